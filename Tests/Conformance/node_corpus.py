"""The materialized node-test corpus (see materialize_node_tests.py), the claimed-op
list and the expected-failure manifest, and which cases a claim selects."""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

import onnx
from onnx import numpy_helper


@dataclass
class Case:
    name: str
    directory: str
    op: str                       # the operator the case tests
    expanded: bool                # the op's function body rather than the op itself
    graph_ops: list[str]          # every op in the graph, subgraphs included
    non_tensor_values: list[str]  # e.g. ["sequence_type"] for graph inputs/outputs
    rtol: float
    atol: float


def load_corpus(cases_dir: str) -> dict[str, Case]:
    index_path = os.path.join(cases_dir, "cases.json")
    if not os.path.exists(os.path.join(cases_dir, "STAMP")) or not os.path.exists(index_path):
        raise SystemExit(f"{cases_dir} holds no corpus: run "
                         f"Tests/Conformance/materialize_node_tests.py {cases_dir} first")
    with open(index_path) as f:
        index = json.load(f)
    return {
        name: Case(name=name, directory=os.path.join(cases_dir, name), op=entry["op"],
                   expanded=entry["expanded"], graph_ops=entry["graph_ops"],
                   non_tensor_values=entry["non_tensor_values"],
                   rtol=entry["rtol"], atol=entry["atol"])
        for name, entry in index.items()
    }


def read_claimed_ops(path: str) -> set[str]:
    """One op per line; `#` starts a comment."""
    ops = set()
    with open(path) as f:
        for line in f:
            ops.update(line.split("#", 1)[0].split())
    return ops


def read_expected_failures(path: str) -> dict[str, str]:
    """`case_name  # reason` per line -> {case_name: reason}."""
    entries = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            code, _, reason = line.partition("#")
            words = code.split()
            if not words:
                continue
            if len(words) != 1:
                raise SystemExit(f"{path}:{number}: expected `case_name  # reason`, got {line.strip()!r}")
            entries[words[0]] = reason.strip()
    return entries


def is_selected(case: Case, claimed: set[str]) -> bool:
    """A case belongs to the op it tests. An `_expanded` case runs the op's
    function body instead, so it also needs every op of that body claimed."""
    if case.op not in claimed:
        return False
    return not case.expanded or set(case.graph_ops) <= claimed


def load_data_sets(case: Case, model: onnx.ModelProto) -> list[tuple[dict, list]]:
    """[(feeds {input name: ndarray}, expected outputs [ndarray])] for a tensor-only case."""
    initializers = {t.name for t in model.graph.initializer}
    input_names = [v.name for v in model.graph.input if v.name not in initializers]
    data_sets = []
    for set_dir in sorted(glob.glob(os.path.join(case.directory, "test_data_set_*"))):
        feeds = {name: read_tensor(os.path.join(set_dir, f"input_{k}.pb"))
                 for k, name in enumerate(input_names)
                 if os.path.exists(os.path.join(set_dir, f"input_{k}.pb"))}
        expected = [read_tensor(os.path.join(set_dir, f"output_{k}.pb"))
                    for k in range(len(model.graph.output))]
        data_sets.append((feeds, expected))
    return data_sets


def read_tensor(path: str):
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)
