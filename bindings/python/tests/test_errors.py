"""Bad files, bad models and bad feeds raise KerfError with the right status
and a message that names the culprit."""

import os
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf import KerfError, Status


def raises(status, function, *args, **kwargs):
    """Calls function(*args, **kwargs), asserts it raised KerfError(status), returns it."""
    with pytest.raises(KerfError) as failure:
        function(*args, **kwargs)
    error = failure.value
    assert error.status == status, f"expected {status.name}, got {error}"
    assert isinstance(error.status, Status)
    assert isinstance(error.message, str) and error.message.strip()
    assert error.message in str(error)
    return error


# The MLP's input gets a name no generic message would contain by chance.
FEED = "pixels"


@pytest.fixture
def mlp_session(tmp_path):
    with kerf.load(models.save(models.mlp(input_name=FEED), tmp_path / "mlp.onnx")) as model:
        with model.session() as session:
            yield session


# Loading

def test_missing_file_is_io(tmp_path):
    path = tmp_path / "no_such_model.onnx"
    error = raises(Status.IO, kerf.load, path)
    assert "no_such_model.onnx" in error.message


def test_directory_is_io(tmp_path):
    raises(Status.IO, kerf.load, tmp_path)


@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "text"])
def test_garbage_is_invalid_model(tmp_path, kind):
    valid = models.mlp().SerializeToString()
    data = {
        "empty": b"",
        "random": np.random.default_rng(1234).integers(0, 256, 1000, dtype=np.uint8).tobytes(),
        "truncated": valid[: len(valid) // 2],
        "text": b"this is not an ONNX model\n" * 10,
    }[kind]
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(data)
    raises(Status.INVALID_MODEL, kerf.load, path)
    raises(Status.INVALID_MODEL, kerf.load_bytes, data)


def load_and_prepare(proto):
    """Loads `proto` and creates a session (a problem may surface in either)."""
    with kerf.load_bytes(proto.SerializeToString()) as model:
        model.session().close()


def test_model_without_opset_import_is_invalid():
    proto = models.mlp()
    del proto.opset_import[:]
    raises(Status.INVALID_MODEL, load_and_prepare, proto)


def test_node_reading_an_undefined_value_is_invalid():
    proto = models.make_model(
        [helper.make_node("Add", ["x", "ghost"], ["y"], name="haunted_add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    error = raises(Status.INVALID_MODEL, load_and_prepare, proto)
    assert "ghost" in error.message


def test_unknown_op_is_unsupported_and_named():
    error = raises(Status.UNSUPPORTED, load_and_prepare, models.unknown_op("FooBar", "mystery_node"))
    assert "FooBar" in error.message
    assert "mystery_node" in error.message


def test_path_with_nul_byte_is_invalid_argument():
    raises(Status.INVALID_ARGUMENT, kerf.load, "model\0.onnx")


# Running

def test_wrong_input_name(mlp_session):
    error = raises(Status.INVALID_ARGUMENT, mlp_session.run,
                   {"pixles": models.random_feed((1, 16))})
    assert "pixles" in error.message


def test_missing_feed(mlp_session):
    error = raises(Status.INVALID_ARGUMENT, mlp_session.run, {})
    assert FEED in error.message


def test_unknown_output_name(mlp_session):
    error = raises(Status.INVALID_ARGUMENT, mlp_session.run,
                   {FEED: models.random_feed((1, 16))}, outputs=["no_such_output"])
    assert "no_such_output" in error.message


@pytest.mark.parametrize("feed", [
    pytest.param(np.zeros((2, 16), np.float64), id="wrong-dtype"),
    pytest.param(np.zeros((2, 16), np.int32), id="int-for-float"),
    pytest.param(np.zeros((16,), np.float32), id="rank-too-low"),
    pytest.param(np.zeros((2, 16, 1), np.float32), id="rank-too-high"),
    pytest.param(np.zeros((2, 15), np.float32), id="static-dim"),
])
def test_feed_that_does_not_fit_is_shape_mismatch(mlp_session, feed):
    error = raises(Status.SHAPE_MISMATCH, mlp_session.run, {FEED: feed})
    assert FEED in error.message


@pytest.mark.parametrize("value", [
    np.zeros((2, 16), np.complex64),
    np.array([["a"] * 16] * 2),
    np.array([[object()] * 16] * 2, dtype=object),
    [["a"] * 16] * 2,  # a list converts to the declared float32, which fails
], ids=["complex", "str", "object", "unconvertible-list"])
def test_feed_without_kerf_dtype_is_invalid_argument(mlp_session, value):
    error = raises(Status.INVALID_ARGUMENT, mlp_session.run, {FEED: value})
    assert FEED in error.message


def test_bfloat16_output_comes_back_as_ml_dtypes_bfloat16():
    import ml_dtypes  # an onnx dependency, installed with the test requirements
    proto = models.make_model(
        [helper.make_node("Cast", ["x"], ["y"], name="to_bf16", to=TensorProto.BFLOAT16)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [3])],
    )
    x = np.array([1.0, 3.14159, -2.5e-3], np.float32)
    with kerf.load_bytes(proto.SerializeToString()) as model, model.session() as session:
        y = session.run({"x": x})["y"]
    assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.view(np.uint16), x.astype(ml_dtypes.bfloat16).view(np.uint16))


def test_session_is_usable_after_a_failed_run(mlp_session):
    raises(Status.SHAPE_MISMATCH, mlp_session.run, {FEED: np.zeros((2, 3), np.float32)})
    feed = models.random_feed((2, 16))
    expected = models.run_ort(models.mlp(input_name=FEED), {FEED: feed})["probs"]
    np.testing.assert_allclose(mlp_session.run({FEED: feed})["probs"], expected,
                               rtol=1e-4, atol=1e-5)


def test_negative_threads_is_invalid_argument(tmp_path):
    with kerf.load_bytes(models.mlp().SerializeToString()) as model:
        raises(Status.INVALID_ARGUMENT, model.session, threads=-1)
        raises(Status.INVALID_ARGUMENT, model.session, threads=2**40)


def test_closed_handles_are_refused():
    model = kerf.load_bytes(models.mlp().SerializeToString())
    session = model.session()
    session.close()
    session.close()
    raises(Status.INVALID_ARGUMENT, session.run, {"input": models.random_feed((1, 16))})
    model.close()
    raises(Status.INVALID_ARGUMENT, model.session)
    raises(Status.INVALID_ARGUMENT, model.to_bytes)


def test_error_for_unknown_future_status():
    error = KerfError(99, "from a newer library")
    assert error.status == 99 and "99" in str(error)


# The library itself

def test_abi_major_mismatch_is_refused():
    from kerf import _bindings
    _bindings.check_abi((1 << 16) | _bindings.ABI_MINOR)
    _bindings.check_abi((1 << 16) | (_bindings.ABI_MINOR + 1))  # a newer minor is fine
    with pytest.raises(ImportError, match="ABI"):
        _bindings.check_abi((1 << 16) | (_bindings.ABI_MINOR - 1))  # lacks what this binding declares
    with pytest.raises(ImportError, match="ABI"):
        _bindings.check_abi(2 << 16)
    with pytest.raises(ImportError, match="ABI"):
        _bindings.check_abi(0 << 16 | 3)
    with pytest.raises(ImportError, match="ABI"):
        _bindings.check_abi(1 << 16 | 0)  # older than the functions this binding declares
    with pytest.raises(ImportError, match="ABI"):
        _bindings.check_abi(1 << 16 | 1)  # no sparse_kernels session option


def _import_kerf(env, cwd):
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(kerf.__file__)))
    env = dict(env, PYTHONPATH=package_root)
    return subprocess.run([sys.executable, "-c", "import kerf; print(kerf.__version__)"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_missing_library_is_a_clear_import_error(tmp_path):
    result = _import_kerf({"KERF_LIBRARY": str(tmp_path / "libNope.so")}, tmp_path)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "libNope.so" in result.stderr


def test_imports_in_a_bare_environment_from_another_directory(tmp_path):
    # env -i: nothing but the library path and the package path.
    result = _import_kerf({"KERF_LIBRARY": os.environ["KERF_LIBRARY"]}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == kerf.__version__
