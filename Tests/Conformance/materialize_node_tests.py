#!/usr/bin/env python3
"""Writes the ONNX backend node tests to disk, in ONNX's own test-data layout.

    python3 Tests/Conformance/materialize_node_tests.py OUTDIR

The `onnx` wheel ships the node-test *generators*, not their files; this script
runs them (onnx.backend.test.loader.load_node_model_tests) and writes

    OUTDIR/<case>/model.onnx
    OUTDIR/<case>/data.json                      {"rtol": .., "atol": ..}
    OUTDIR/<case>/test_data_set_N/input_K.pb     TensorProto / SequenceProto / OptionalProto
    OUTDIR/<case>/test_data_set_N/output_K.pb
    OUTDIR/cases.json                            one entry per case (see describe_case)
    OUTDIR/STAMP                                 written last; names the onnx and ml_dtypes versions

`data.json` is the file ONNX's own loader (load_model_tests) reads tolerances from.
A rerun is a no-op when STAMP matches the installed onnx, ml_dtypes and this script's format.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

FORMAT_VERSION = 1
EXPANDED_SUFFIX = re.compile(r"^(?P<base>.+)_expanded(_ver\d+)?$")


def stamp_text() -> str:
    # ml_dtypes decides some expected outputs (Cast to int4/int2 out of range), so it is stamped too.
    import ml_dtypes
    return f"onnx {onnx.__version__} ml_dtypes {ml_dtypes.__version__} format {FORMAT_VERSION}\n"


def serialize_value(value, value_info: onnx.ValueInfoProto) -> bytes:
    """Encodes one input/output the way onnx's `cmd_tools generate-data` does."""
    kind = value_info.type.WhichOneof("value")
    name = value_info.name
    if kind == "map_type":
        return numpy_helper.from_dict(value, name).SerializeToString()
    if kind == "sequence_type":
        return numpy_helper.from_list(value, name).SerializeToString()
    if kind == "optional_type":
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, onnx.TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), name).SerializeToString()


def op_key(node: onnx.NodeProto) -> str:
    """`Conv` for the default domain, `ai.onnx.ml.TreeEnsemble` otherwise."""
    domain = node.domain if node.domain not in ("", "ai.onnx") else ""
    return f"{domain}.{node.op_type}" if domain else node.op_type


def graph_op_keys(graph: onnx.GraphProto) -> set[str]:
    """Every operator used by `graph` and by the subgraphs in its attributes."""
    keys = set()
    for node in graph.node:
        keys.add(op_key(node))
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                keys |= graph_op_keys(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    keys |= graph_op_keys(g)
    return keys


def describe_case(case, tested_op: str) -> dict:
    graph = case.model.graph
    value_kinds = {v.type.WhichOneof("value") for v in [*graph.input, *graph.output]}
    return {
        "op": tested_op,
        "expanded": EXPANDED_SUFFIX.match(case.name) is not None,
        "graph_ops": sorted(graph_op_keys(graph)),
        "non_tensor_values": sorted(value_kinds - {"tensor_type"}),
        "opset": {o.domain or "ai.onnx": o.version for o in case.model.opset_import},
        "ir_version": case.model.ir_version,
        "data_sets": len(case.data_sets),
        "rtol": case.rtol,
        "atol": case.atol,
    }


def tested_ops(cases) -> dict[str, str]:
    """Maps every case name to the operator it tests.

    A plain case is one node of that operator. An `_expanded[_verN]` case is the
    operator's function body; it tests the operator of the case it expands.
    """
    ops = {c.name: op_key(c.model.graph.node[0]) for c in cases if not EXPANDED_SUFFIX.match(c.name)}
    for c in cases:
        match = EXPANDED_SUFFIX.match(c.name)
        if match:
            ops[c.name] = ops[match.group("base")]
    return ops


def write_case(case, case_dir: str) -> None:
    os.makedirs(case_dir)
    graph = case.model.graph
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    with open(os.path.join(case_dir, "data.json"), "w") as f:
        json.dump({"rtol": case.rtol, "atol": case.atol}, f)
    for n, (inputs, outputs) in enumerate(case.data_sets):
        set_dir = os.path.join(case_dir, f"test_data_set_{n}")
        os.makedirs(set_dir)
        for prefix, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            for k, value in enumerate(values):
                with open(os.path.join(set_dir, f"{prefix}_{k}.pb"), "wb") as f:
                    f.write(serialize_value(value, infos[k]))


def materialize(outdir: str) -> dict:
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        cases = load_node_model_tests()
    ops = tested_ops(cases)

    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    index = {}
    for case in sorted(cases, key=lambda c: c.name):
        write_case(case, os.path.join(outdir, case.name))
        index[case.name] = describe_case(case, ops[case.name])
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    with open(os.path.join(outdir, "STAMP"), "w") as f:
        f.write(stamp_text())
    return index


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    stamp = os.path.join(outdir, "STAMP")
    if os.path.exists(stamp) and open(stamp).read() == stamp_text():
        with open(os.path.join(outdir, "cases.json")) as f:
            index = json.load(f)
        note = " (up to date)"
    else:
        index = materialize(outdir)
        note = ""
    n_ops = len({entry["op"] for entry in index.values()})
    n_expanded = sum(entry["expanded"] for entry in index.values())
    print(f"{len(index)} cases ({n_expanded} expanded) over {n_ops} ops in {outdir}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
