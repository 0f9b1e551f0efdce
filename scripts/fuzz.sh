#!/usr/bin/env bash
# Coverage-guided fuzzing with afl++ and SharpFuzz (before releases; the test suite's FuzzTests is the quick,
# seeded version). Usage: scripts/fuzz.sh [model|npy] [seconds, default 1800]
# Crashes (any exception but a ScalpelException) and hangs land in fuzz-out/<mode>/default/{crashes,hangs}.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-model}
seconds=${2:-1800}

if ! command -v afl-fuzz >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
  else
    echo "error: afl-fuzz is missing: install the Debian package afl++ (sudo apt-get install afl++)" >&2
    exit 1
  fi
fi
tools=fuzz-out/tools
[ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null

bin=fuzz-out/bin
rm -rf "$bin" # sharpfuzz refuses to instrument twice
dotnet publish tests/Scalpel.Fuzz -c Release -o "$bin" --nologo -v quiet
seeds=fuzz-out/seeds-$mode
rm -rf "$seeds" && mkdir -p "$seeds"
dotnet "$bin/Scalpel.Fuzz.dll" seeds "$mode" "$seeds"
# Instrument the code under test (not the harness, not the framework); instrumented code runs only under afl.
for dll in Scalpel.Onnx Scalpel.CodeGen Scalpel.Pruning Google.Protobuf; do "$tools/sharpfuzz" "$bin/$dll.dll"; done

export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
afl-fuzz -i "$seeds" -o "fuzz-out/$mode" -t 10000 -m none -V "$seconds" -- dotnet "$bin/Scalpel.Fuzz.dll" "$mode"
crashes=$(find "fuzz-out/$mode/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
hangs=$(find "fuzz-out/$mode/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
echo "fuzz $mode: $crashes crashes, $hangs hangs (fuzz-out/$mode/default)"
[ "$crashes" -eq 0 ] && [ "$hangs" -eq 0 ]
