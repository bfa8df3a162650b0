#!/usr/bin/env bash
# The shipped libKerf.so loads from another directory with an empty environment, from C
# (classify example) and from Python (ctypes), and exports only kerf_* symbols.
# Usage: test_portable_load.sh LIBKERF.so WORKDIR   (WORKDIR holds digits_mlp.onnx, classify)
set -euo pipefail
lib=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
python=$(command -v python3)
elsewhere=$(mktemp -d)
cp "$lib" "$elsewhere/libKerf.so"
cc -std=c99 -I "$root/include" "$root/bindings/c/classify.c" \
   -L "$elsewhere" -lKerf -Wl,-rpath,'$ORIGIN' -o "$elsewhere/classify"
out=$(cd / && env -i "$elsewhere/classify" "$work/digits_mlp.onnx" "$work/digits_sample.npy")
echo "$out" | grep -q "class" || { echo "FAIL: classify printed: $out"; exit 1; }
(cd / && env -i KERF_LIBRARY="$elsewhere/libKerf.so" PYTHONPATH="$root/bindings/python" \
   "$python" -c "import kerf; m = kerf.load('$work/digits_mlp.onnx'); print(len(m.inputs))") | grep -qx 1 \
   || { echo "FAIL: python could not load the library with an empty environment"; exit 1; }
extra=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | grep -v '^kerf_' || true)
if [ -n "$extra" ]; then echo "FAIL: libKerf.so exports non-kerf symbols:"; echo "$extra" | head; exit 1; fi
ldd "$lib" | awk '{print $1}' | grep -E 'libswift|libFoundation|libdispatch' && { echo "FAIL: Swift runtime linked dynamically"; exit 1; }
rm -rf "$elsewhere"
echo "2 passed, 0 failed"
