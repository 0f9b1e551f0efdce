#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine that has the .NET SDK: installs the Debian data
# packages the tests read (ONNX conformance cases, Fashion-MNIST) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -d /usr/share/libonnx-testdata/data/node ] || packages+=(libonnx-testdata)
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "error: the tests need the Debian packages: ${packages[*]} (run: sudo apt-get install ${packages[*]})" >&2
    exit 1
  fi
fi

dotnet test Scalpel.Build.sln -c Release --logger "console;verbosity=normal" "$@"
