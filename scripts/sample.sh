#!/usr/bin/env bash
# Packs Scalpel.Build from this checkout into artifacts/feed and runs samples/FashionClassifier against it:
# `dotnet build` prunes the bundled Fashion-MNIST MLP for this machine and compiles the generated code into
# the app, which then classifies the 10k test images next to ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "error: the sample reads Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)" >&2
    exit 1
  fi
fi

# A version of its own per run, so NuGet never serves an older pack of the same version from its cache.
version="0.0.0-sample.$(date -u +%Y%m%d%H%M%S)"
rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/scalpel.build/0.0.0-sample.*
dotnet pack src/Scalpel.Build.Tasks -c Release -o artifacts/feed -p:ScalpelPackageVersion="$version" -nologo -v:quiet
find artifacts/feed -name 'Scalpel.Build.0.0.0-sample.*.nupkg' ! -name "Scalpel.Build.$version.nupkg" -delete
dotnet run --project samples/FashionClassifier -c Release -p:ScalpelBuildVersion="$version" "$@"
