"""Hostile models (issue 16): malformed bytes, sizes that overflow or promise far more data than
the file holds, and graphs whose meaning is ambiguous. Loading or running each must raise
KerfError with the right status; before the fixes several of them killed the Python process.

Each hostile case runs in a child process with a 16 GiB address-space limit, so that a crash
(or an attempt to allocate terabytes) fails that test instead of taking pytest or the machine
down with it."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf import Status

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child loads each model file, creates a session and, when feeds are given, runs once;
# it prints "OK" or the KerfError's status and message.
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import kerf
    for path in sys.argv[1:]:
        feeds = None
        if path.endswith(".npz"):
            continue
        if path + ".npz" in sys.argv:
            feeds = dict(np.load(path + ".npz"))
        try:
            with open(path, "rb") as f, kerf.load_bytes(f.read()) as model, model.session(threads=1) as session:
                if feeds is not None:
                    session.run(feeds)
            print("OK", flush=True)
        except kerf.KerfError as error:
            print(int(error.status), error.message.replace("\\n", " "), flush=True)
""")


def outcomes(tmp_path, protos, feeds=None):
    """Loads (and runs with `feeds`) each of `protos` (ModelProtos or bytes) in one child
    process; returns a list of "OK" or (status, message). Fails when the child dies."""
    paths = []
    for i, proto in enumerate(protos):
        path = tmp_path / f"case{i}.onnx"
        path.write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
        paths.append(str(path))
        if feeds is not None:
            np.savez(str(path) + ".npz", **feeds)
            paths.append(str(path) + ".npz")
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True,
                           timeout=300, env=env, preexec_fn=models.limit_child_memory)
    assert child.returncode == 0, f"the process died ({child.returncode}): {child.stderr[-2000:]}"
    lines = child.stdout.splitlines()
    assert len(lines) == len(protos), child.stdout + child.stderr
    return [line if line == "OK" else (Status(int(line.split(" ", 1)[0])), line.split(" ", 1)[1]) for line in lines]


def refused(tmp_path, proto, status, *mentions, feeds=None):
    """Asserts that `proto` is refused with `status` and a message naming every `mentions`."""
    (outcome,) = outcomes(tmp_path, [proto], feeds)
    assert outcome != "OK", "the model was accepted"
    got, message = outcome
    assert got == status, f"expected {status.name}, got {got.name}: {message}"
    for m in mentions:
        assert m in message, message
    return message


def add_model(initializers=(), sparse=(), opsets=(("", models.OPSET),)):
    """y = x + w over [2, 3] floats, w an initializer or sparse initializer."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=list(initializers), sparse_initializer=list(sparse))
    return helper.make_model(graph, ir_version=models.IR_VERSION,
                             opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


# Class 1: protobuf pre-scan arithmetic

def test_length_varint_running_past_its_message_is_invalid(tmp_path):
    # graph { initializer { raw_data: a length whose varint runs past the initializer } }
    refused(tmp_path, b"\x3a\x04\x2a\x02\x4a\x85\x20", Status.INVALID_MODEL)
    refused(tmp_path, b"\x3a\x02\x2a\x85\x20", Status.INVALID_MODEL)


def test_bit_flips_before_a_payload_load_or_raise(tmp_path):
    """Every single-bit flip in the bytes before a large initializer's payload (length prefixes,
    dims, names) loads or raises KerfError; none kills the process."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.zeros(6, np.float32))
    big = onnx.numpy_helper.from_array(np.full(4096, 0.5, np.float32), "big")
    model = add_model([weights, big])
    valid = model.SerializeToString()
    start = valid.index(np.full(4, 0.5, np.float32).tobytes())
    flipped = []
    for i in range(start):
        for bit in range(8):
            b = bytearray(valid)
            b[i] ^= 1 << bit
            flipped.append(bytes(b))
    results = outcomes(tmp_path, flipped)
    assert any(r != "OK" for r in results)
    assert all(r == "OK" or isinstance(r[0], Status) for r in results)


# Class 2: allocation before validation

def test_typed_field_dims_promising_more_than_the_data_are_refused(tmp_path):
    """dims [2^33] with no float_data: a 32 GiB allocation used to come before the check."""
    huge = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 33])
    refused(tmp_path, add_model([huge]), Status.INVALID_MODEL, "'w'", "0 values")
    ints = onnx.TensorProto(name="w", data_type=TensorProto.INT64, dims=[1 << 33], int64_data=[1, 2])
    refused(tmp_path, add_model([ints]), Status.INVALID_MODEL, "'w'", "2 values")


@pytest.mark.parametrize("dims", [[-1, 3], [1 << 36, 1 << 36], [0, 1 << 36, 1 << 36, 1 << 36]],
                         ids=["negative", "overflowing", "empty-with-overflowing-strides"])
def test_invalid_dims_are_refused(tmp_path, dims):
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=dims)
    refused(tmp_path, add_model([w]), Status.INVALID_MODEL, "'w'")


def sparse_w(dims, indices, values, linear=False):
    """A sparse initializer 'w' of `dims`: int64 `indices`, linear [NNZ] or coordinates [NNZ, rank]."""
    values = helper.make_tensor("w", TensorProto.FLOAT, [len(values)], values)
    shape = [len(indices)] if linear else [len(indices) // len(dims), len(dims)]
    return helper.make_sparse_tensor(values, onnx.TensorProto(data_type=TensorProto.INT64, dims=shape, int64_data=indices), dims)


def test_sparse_initializer_expands_and_runs(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for sparse in [sparse_w([2, 3], [0, 1, 1, 2], [5, 7]), sparse_w([2, 3], [1, 5], [5, 7], linear=True)]:
        with kerf.load_bytes(add_model(sparse=[sparse]).SerializeToString()) as model, model.session() as session:
            y = session.run({"x": x})["y"]
        np.testing.assert_array_equal(y, x + np.array([[0, 5, 0], [0, 0, 7]], np.float32))


@pytest.mark.parametrize("dims,indices,mentions", [
    ([1 << 40, 1 << 40], [0, 0], ["sparse tensor 'w'"]),
    ([4, 4], [1 << 62, 1], ["coordinate 4611686018427387904", "dimension 0"]),
    ([2, 3], [0, 4], ["coordinate 4", "dimension 1"]),  # flat index 4 is in range: it landed on [1, 1]
    ([2, 3], [-1, 1], ["coordinate -1"]),
    ([-2, 3], [0, 0], ["-2"]),
], ids=["overflowing-dims", "coordinate-2^62", "coordinate-out-of-its-dimension", "negative-coordinate", "negative-dims"])
def test_sparse_initializer_sizes_and_coordinates_are_checked(tmp_path, dims, indices, mentions):
    refused(tmp_path, add_model(sparse=[sparse_w(dims, indices, [1.0])]), Status.INVALID_MODEL, *mentions)


def test_sparse_initializer_larger_than_memory_is_out_of_memory(tmp_path):
    sparse = sparse_w([1 << 19, 1 << 20], [0, 0], [1.0])  # 2 TiB dense
    refused(tmp_path, add_model(sparse=[sparse]), Status.OUT_OF_MEMORY, "sparse tensor 'w'")


def conv_model(pads):
    w = helper.make_tensor("W", TensorProto.FLOAT, [1, 1, 1, 1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv", pads=pads)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    return helper.make_model(graph, ir_version=models.IR_VERSION, opset_imports=[helper.make_opsetid("", models.OPSET)])


@pytest.mark.parametrize("pads,status", [([1 << 31] * 4, Status.OUT_OF_MEMORY), ([1 << 62, 1 << 62, 0, 1 << 62], Status.INVALID_MODEL)],
                         ids=["2^31", "2^62"])
def test_conv_pads_overflowing_the_output_are_refused(tmp_path, pads, status):
    refused(tmp_path, conv_model(pads), status, "Conv", feeds={"x": np.ones((1, 1, 3, 3), np.float32)})


# Class 6: load-time validation

def chain(nodes, inputs=("x",), initializers=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(i, TensorProto.FLOAT, [2]) for i in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=list(initializers))
    return helper.make_model(graph, ir_version=models.IR_VERSION, opset_imports=[helper.make_opsetid("", models.OPSET)])


def test_two_nodes_writing_one_value_are_refused(tmp_path):
    proto = chain([helper.make_node("Relu", ["x"], ["t"], name="first"), helper.make_node("Neg", ["x"], ["t"], name="second"),
                   helper.make_node("Identity", ["t"], ["y"], name="out")])
    refused(tmp_path, proto, Status.INVALID_MODEL, "node 'second' (Neg) writes 't'", "node 'first' (Relu)")


def test_node_writing_a_graph_input_is_refused(tmp_path):
    proto = chain([helper.make_node("Relu", ["x"], ["x"], name="overwrite"), helper.make_node("Identity", ["x"], ["y"], name="out")])
    refused(tmp_path, proto, Status.INVALID_MODEL, "node 'overwrite' (Relu) writes 'x'", "graph input")


def test_node_writing_an_initializer_is_refused(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    proto = chain([helper.make_node("Relu", ["x"], ["w"], name="overwrite"), helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                  initializers=[w])
    refused(tmp_path, proto, Status.INVALID_MODEL, "writes 'w'", "initializer")


@pytest.mark.parametrize("domain,version", [("", 99), ("ai.onnx", 29), ("", 0)])
def test_unknown_opset_is_refused_with_its_version(tmp_path, domain, version):
    proto = add_model([helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [0.0] * 6)], opsets=[(domain, version)])
    refused(tmp_path, proto, Status.INVALID_MODEL, f"opset {version}")


def test_newest_supported_opset_and_other_domains_load(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [0.0] * 6)
    assert outcomes(tmp_path, [add_model([w], opsets=[("", 28)]), add_model([w], opsets=[("", 17), ("com.example", 99)])]) == ["OK", "OK"]
