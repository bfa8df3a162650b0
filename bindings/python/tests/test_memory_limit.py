"""The allocation limit (issue 16, class 3): outputs of tens of GB asked for by a few bytes of
input raise KerfError(OUT_OF_MEMORY) naming the node, and the process lives; before the limit
"Fatal error: failed to allocate" killed it. kerf.set_memory_limit and session(memory_limit=)
bound what Kerf holds.

Cases that could allocate run in a child process with a 16 GiB address-space limit, so that a
regression fails its test instead of taking pytest or the machine down."""

import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf import Status
from kerf._bindings import TensorP, lib

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Loads argv[1], feeds argv[2] (.npz), runs once; prints "OK" or "<status> <message>".
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import kerf
    feeds = dict(np.load(sys.argv[2]))
    try:
        with kerf.load(sys.argv[1]) as model, model.session(threads=1) as session:
            session.run(feeds)
        print("OK", flush=True)
    except kerf.KerfError as error:
        print(int(error.status), error.message.replace("\\n", " "), flush=True)
""")


def run_in_child(tmp_path, model, feeds):
    """(status, message) or "OK" of one run of `model` in a memory-limited child."""
    path, data = tmp_path / "model.onnx", tmp_path / "feeds.npz"
    path.write_bytes(model.SerializeToString())
    np.savez(data, **feeds)
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(data)], capture_output=True, text=True,
                           timeout=300, env=env, preexec_fn=models.limit_child_memory)
    assert child.returncode == 0, f"the process died ({child.returncode}): {child.stderr[-2000:]}"
    line = child.stdout.strip()
    return line if line == "OK" else (Status(int(line.split(" ", 1)[0])), line.split(" ", 1)[1])


def one_node(op, inputs, name="n"):
    """A model of one `op` node named `name` over the given (name, onnx dtype, shape) inputs."""
    graph = helper.make_graph(
        [helper.make_node(op, [i[0] for i in inputs], ["y"], name=name)], "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, ir_version=models.IR_VERSION, opset_imports=[helper.make_opsetid("", models.OPSET)])


HUGE = np.array([10_000, 1_000_000], np.int64)  # 10^10 floats: 37 GB


@pytest.mark.parametrize("case", ["MatMul", "ConstantOfShape", "Expand", "Tile"])
def test_tens_of_gb_outputs_raise_out_of_memory(tmp_path, case):
    if case == "MatMul":
        model = one_node("MatMul", [("a", TensorProto.FLOAT, [100000, 1]), ("b", TensorProto.FLOAT, [1, 100000])], "fc1")
        feeds = {"a": np.ones((100000, 1), np.float32), "b": np.ones((1, 100000), np.float32)}
    elif case == "ConstantOfShape":
        model = one_node("ConstantOfShape", [("s", TensorProto.INT64, [2])], "fill")
        feeds = {"s": HUGE}
    elif case == "Expand":
        model = one_node("Expand", [("x", TensorProto.FLOAT, [1, 1]), ("s", TensorProto.INT64, [2])], "grow")
        feeds = {"x": np.ones((1, 1), np.float32), "s": HUGE}
    else:
        model = one_node("Tile", [("x", TensorProto.FLOAT, [1, 1]), ("s", TensorProto.INT64, [2])], "tile")
        feeds = {"x": np.ones((1, 1), np.float32), "s": HUGE}
    outcome = run_in_child(tmp_path, model, feeds)
    assert outcome != "OK"
    status, message = outcome
    assert status == Status.OUT_OF_MEMORY, message
    assert "GB" in message and "limit" in message, message
    if case == "MatMul":
        assert "fc1" in message and "[100000, 100000]" in message, message


def test_session_memory_limit_refuses_a_larger_output():
    model = kerf.load_bytes(one_node("ConstantOfShape", [("s", TensorProto.INT64, [1])], "fill").SerializeToString())
    with model, model.session(threads=1, memory_limit=1 << 20) as session:
        with pytest.raises(kerf.KerfError) as error:
            session.run({"s": np.array([1 << 20], np.int64)})  # 4 MB of floats
        assert error.value.status == Status.OUT_OF_MEMORY
        assert "fill" in error.value.message and "4 MB" in error.value.message, error.value.message
        (y,) = session.run({"s": np.array([1000], np.int64)}).values()
        assert y.shape == (1000,)
    with pytest.raises(kerf.KerfError) as error:
        model2 = kerf.load_bytes(one_node("Relu", [("x", TensorProto.FLOAT, [1])]).SerializeToString())
        model2.session(memory_limit=-1)
    assert error.value.status == Status.INVALID_ARGUMENT


def test_process_memory_limit():
    default = kerf.memory_limit()
    assert 0 < default < 2**63
    try:
        assert kerf.set_memory_limit(1 << 20) == default
        assert kerf.memory_limit() == 1 << 20
        model = kerf.load_bytes(one_node("ConstantOfShape", [("s", TensorProto.INT64, [1])], "fill").SerializeToString())
        with model, model.session(threads=1) as session:
            with pytest.raises(kerf.KerfError) as error:
                session.run({"s": np.array([1 << 20], np.int64)})
            assert error.value.status == Status.OUT_OF_MEMORY
            assert "1 MB" in error.value.message, error.value.message
    finally:
        kerf.set_memory_limit(None)
    assert kerf.memory_limit() == default


def test_creating_a_huge_tensor_is_refused():
    """kerf_tensor_create of 2^40 floats (4 TB) and of 2^33 (32 GB) returns OUT_OF_MEMORY."""
    for count in (1 << 40, 1 << 33):
        dims = (ctypes.c_int64 * 1)(count)
        out = TensorP()
        status = lib.kerf_tensor_create(1, dims, 1, None, count * 4, ctypes.byref(out))
        assert status == Status.OUT_OF_MEMORY, lib.kerf_last_error()
        assert not out
        assert b"allocation limit" in lib.kerf_last_error()
