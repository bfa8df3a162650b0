#!/usr/bin/env python3
"""Round trip: every .onnx file shipped in the onnx wheel loads in Kerf and saves back
semantically equal to the original, and the saved file passes onnx.checker (full_check)
whenever the original does.

    python3 Tests/Conformance/run_roundtrip.py [--extra DIR ...]

"Semantically equal": tensors compare by dtype, dims and values (raw_data vs typed fields
and external vs inline storage may differ); every other field must match exactly, unknown
fields included. Closing line: "N passed, M failed"; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backends import import_kerf  # noqa: E402


def canonical(model: onnx.ModelProto) -> bytes:
    """Serialized model with every TensorProto rewritten to one canonical encoding."""
    m = onnx.ModelProto()
    m.CopyFrom(model)

    def fix_tensor(t: onnx.TensorProto) -> None:
        if t.data_type == onnx.TensorProto.STRING:
            return
        array = numpy_helper.to_array(t)
        name, doc = t.name, t.doc_string
        meta = list(t.metadata_props)
        t.Clear()
        t.CopyFrom(numpy_helper.from_array(array, name))
        t.doc_string = doc
        t.metadata_props.extend(meta)

    def fix_graph(g: onnx.GraphProto) -> None:
        for t in g.initializer:
            fix_tensor(t)
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    fix_tensor(a.t)
                for t in a.tensors:
                    fix_tensor(t)
                if a.HasField("g"):
                    fix_graph(a.g)
                for sub in a.graphs:
                    fix_graph(sub)

    fix_graph(m.graph)
    for f in m.functions:
        for n in f.node:
            for a in n.attribute:
                if a.HasField("t"):
                    fix_tensor(a.t)
    return m.SerializeToString(deterministic=True)


def passes_checker(model: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(model, full_check=True)
        return True
    except Exception:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extra", nargs="*", default=[], help="more directories of .onnx files")
    args = parser.parse_args()
    kerf = import_kerf()
    root = os.path.dirname(onnx.__file__)
    paths = sorted(glob.glob(os.path.join(root, "**", "*.onnx"), recursive=True))
    for d in args.extra:
        paths += sorted(glob.glob(os.path.join(d, "**", "*.onnx"), recursive=True))
    passed = failed = 0
    for path in paths:
        label = os.path.relpath(path, root)
        try:
            original = onnx.load(path)
            with kerf.load(path) as model:
                saved = onnx.load_from_string(model.to_bytes())
            if canonical(saved) != canonical(original):
                raise AssertionError("saved model differs from the original")
            if passes_checker(original) and not passes_checker(saved):
                raise AssertionError("saved model fails onnx.checker full_check while the original passes")
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every failure kind on one line
            failed += 1
            print(f"FAIL {label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    print(f"round trip of {len(paths)} .onnx files from onnx {onnx.__version__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not paths else 0


if __name__ == "__main__":
    sys.exit(main())
