"""Writes a fresh copy of the digits MLP with every weight in external data, for test_capi's
external-data checks (which rewrite the model in place, so each run needs its own copy).

Usage: python3 Tests/CAPI/external_fixture.py SRC.onnx DST_DIR   -> DST_DIR/digits.onnx + .data
"""
import os
import shutil
import sys

import onnx
from onnx import numpy_helper as h


def main():
    src, dst_dir = sys.argv[1], sys.argv[2]
    shutil.rmtree(dst_dir, ignore_errors=True)
    os.makedirs(dst_dir)
    m = onnx.load(src)
    for t in m.graph.initializer:
        t.CopyFrom(h.from_array(h.to_array(t), t.name))  # raw_data, so every tensor goes external
    onnx.save(m, os.path.join(dst_dir, "digits.onnx"), save_as_external_data=True,
              location="digits.onnx.data", size_threshold=0)


if __name__ == "__main__":
    main()
