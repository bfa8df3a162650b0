#!/usr/bin/env bash
# Regenerates Sources/OnnxProto/onnx-ml.pb.swift from the onnx-ml.proto shipped in the
# PyPI `onnx` wheel (a superset of onnx.proto: it also carries the ML map/opaque types).
# Needs: protoc (Debian protobuf-compiler) and a protoc-gen-swift built from the same
# swift-protobuf version as Package.swift pins (1.39.0).
set -euo pipefail
cd "$(dirname "$0")/.."
PROTO_DIR=$(python3 -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')
PLUGIN=${PROTOC_GEN_SWIFT:-}
if [ -z "$PLUGIN" ]; then
  work=$(mktemp -d)
  git clone -q https://github.com/apple/swift-protobuf.git "$work/swift-protobuf"
  git -C "$work/swift-protobuf" checkout -q 1.39.0
  swift build -c release --package-path "$work/swift-protobuf" --product protoc-gen-swift
  PLUGIN="$work/swift-protobuf/.build/release/protoc-gen-swift"
fi
tmp=$(mktemp -d)
cp "$PROTO_DIR/onnx-ml.proto" "$tmp/"
protoc --plugin=protoc-gen-swift="$PLUGIN" -I "$tmp" \
  --swift_out=Sources/OnnxProto --swift_opt=Visibility=Public "$tmp/onnx-ml.proto"
echo "generated Sources/OnnxProto/onnx-ml.pb.swift from onnx $(python3 -c 'import onnx; print(onnx.__version__)')"
