"""kerf.InferenceSession against onnxruntime.InferenceSession: ONNX Runtime's documented examples
with only the import changed give the same outputs; signatures, metadata and errors match."""

import warnings

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf.capi import onnxruntime_pybind11_state as kerf_errors
from ort_examples import run_example

MODULES = ["onnxruntime", "kerf"]


def close(got, expected):
    """Outputs equal within the usual tolerance: dtype, shape, values to rtol 1e-4 / atol 1e-5."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def two_in_two_out():
    """input_1[batch, 8], input_2[batch, 4] -> output1 = Relu(input_1 W + input_2),
    output2 = Sigmoid(output1): the names of ONNX Runtime's API summary example."""
    w = np.random.default_rng(3).normal(0, 0.5, (8, 4)).astype(np.float32)
    return models.make_model(
        [helper.make_node("MatMul", ["input_1", "w"], ["mm"], name="matmul"),
         helper.make_node("Add", ["mm", "input_2"], ["sum"], name="add"),
         helper.make_node("Relu", ["sum"], ["output1"], name="relu"),
         helper.make_node("Sigmoid", ["output1"], ["output2"], name="sigmoid")],
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", 8]),
         helper.make_tensor_value_info("input_2", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output1", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("output2", TensorProto.FLOAT, ["batch", 4])],
        [models.initializer("w", w)],
    )


# https://onnxruntime.ai/docs/api/python/tutorial.html (the model is the digits MLP, X_test its test split)
TUTORIAL = """
import numpy
import onnxruntime as rt

sess = rt.InferenceSession("model.onnx", providers=rt.get_available_providers())
input_name = sess.get_inputs()[0].name
print("input name", input_name)
input_shape = sess.get_inputs()[0].shape
print("input shape", input_shape)
input_type = sess.get_inputs()[0].type
print("input type", input_type)
output_name = sess.get_outputs()[0].name
print("output name", output_name)
output_shape = sess.get_outputs()[0].shape
print("output shape", output_shape)
output_type = sess.get_outputs()[0].type
print("output type", output_type)
pred_onx = sess.run([output_name], {input_name: X_test.astype(numpy.float32)})[0]
print(pred_onx)
"""


def test_python_tutorial(tmp_path, monkeypatch, digits):
    path, x, y = digits
    (tmp_path / "model.onnx").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    ort, krf = (run_example(TUTORIAL, module, X_test=x) for module in MODULES)
    for name in ("input_name", "input_shape", "input_type", "output_name", "output_shape", "output_type"):
        assert krf[name] == ort[name], name
    assert krf["input_shape"] == [None, 64] and krf["output_type"] == "tensor(int64)"
    np.testing.assert_array_equal(krf["pred_onx"], ort["pred_onx"])
    assert np.mean(krf["pred_onx"] == y) > 0.9


# https://onnxruntime.ai/docs/api/python/api_summary.html, "Load and run a model"
API_SUMMARY = """
import onnxruntime

session = onnxruntime.InferenceSession("model.onnx")
session.get_modelmeta()
first_input_name = session.get_inputs()[0].name
first_output_name = session.get_outputs()[0].name

results = session.run(None, {"input_1": indata1, "input_2": indata2})
results_empty = session.run([], {"input_1": indata1, "input_2": indata2})
results_named = session.run(["output1", "output2"], {"input_1": indata1, "input_2": indata2})
results_reversed = session.run(["output2", "output1"], {"input_1": indata1, "input_2": indata2})
results_one = session.run(["output2"], {"input_1": indata1, "input_2": indata2})
"""


def test_api_summary_load_and_run(tmp_path, monkeypatch):
    models.save(two_in_two_out(), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    feeds = {"indata1": models.random_feed((5, 8), seed=1), "indata2": models.random_feed((5, 4), seed=2)}
    ort, krf = (run_example(API_SUMMARY, module, **feeds) for module in MODULES)
    assert (krf["first_input_name"], krf["first_output_name"]) == ("input_1", "output1")
    for name in ("results", "results_empty", "results_named", "results_reversed", "results_one"):
        assert isinstance(krf[name], list), name
        close(krf[name], ort[name])
    assert len(krf["results"]) == 2 and len(krf["results_one"]) == 1


# https://onnxruntime.ai/docs/performance/tune-performance/threading.html and graph-optimizations.html
SESSION_OPTIONS = """
import onnxruntime as rt

sess_options = rt.SessionOptions()
sess_options.intra_op_num_threads = 1
sess_options.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
sess_options.graph_optimization_level = level
session = rt.InferenceSession("model.onnx", sess_options, providers=["CPUExecutionProvider"])
outputs = session.run(None, {session.get_inputs()[0].name: x})
"""


@pytest.mark.parametrize("level", ["ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_ALL"])
def test_session_options_example(tmp_path, monkeypatch, level):
    models.save(models.cnn(), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    x = models.random_feed((2, 3, 8, 8))
    ort = run_example(SESSION_OPTIONS, "onnxruntime", x=x, level=getattr(onnxruntime.GraphOptimizationLevel, level))
    krf = run_example(SESSION_OPTIONS, "kerf", x=x, level=getattr(kerf.GraphOptimizationLevel, level))
    close(krf["outputs"], ort["outputs"])
    # Disabled optimizations run the graph as written: BatchNormalization is not folded into Conv.
    plan = krf["session"]._session.plan()
    assert ("BatchNormalization" in plan) == (level == "ORT_DISABLE_ALL"), plan


def both(*args, **kwargs):
    """(onnxruntime's InferenceSession, kerf's) from the same arguments."""
    return onnxruntime.InferenceSession(*args, **kwargs), kerf.InferenceSession(*args, **kwargs)


def described(args):
    return [(arg.name, arg.shape, arg.type) for arg in args]


SIGNATURES = {
    "symbolic-batch": models.mlp(),
    "three-outputs": models.two_outputs(),
    "unnamed-dim": models.identity(TensorProto.INT64, ["batch", None, 4]),
    "unknown-rank": models.identity(TensorProto.FLOAT16, None),
    "scalar-bool": models.identity(TensorProto.BOOL, []),
    "uint8": models.identity(TensorProto.UINT8, [2, 3]),
    "initializer-listed-as-input": models.make_model(
        [helper.make_node("Add", ["x", "bias"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n"]),
         helper.make_tensor_value_info("bias", TensorProto.DOUBLE, [1])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n"])],
        [models.initializer("bias", np.array([1.0]))]),
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_inputs_and_outputs_match_onnx_runtime(tmp_path, name):
    path = models.save(SIGNATURES[name], tmp_path / "model.onnx")
    ort, krf = both(path)
    assert described(krf.get_inputs()) == described(ort.get_inputs())
    assert described(krf.get_outputs()) == described(ort.get_outputs())
    assert all(isinstance(arg, kerf.NodeArg) for arg in krf.get_inputs() + krf.get_outputs())


def test_modelmeta_matches_onnx_runtime():
    proto = models.mlp()
    proto.doc_string, proto.domain, proto.model_version = "a classifier", "ai.kerf.tests", 7
    proto.graph.doc_string = "two layers"
    helper.set_model_props(proto, {"author": "kerf", "license": "MIT"})
    ort, krf = both(proto.SerializeToString())
    fields = ("producer_name", "graph_name", "domain", "description", "graph_description", "version",
              "custom_metadata_map")
    expected = {field: getattr(ort.get_modelmeta(), field) for field in fields}
    assert {field: getattr(krf.get_modelmeta(), field) for field in fields} == expected
    assert expected["custom_metadata_map"] == {"author": "kerf", "license": "MIT"} and expected["version"] == 7


FEED = np.zeros((2, 16), np.float32)
ERROR_CASES = {
    "missing-file": lambda rt, path: rt.InferenceSession(path + ".missing"),
    "garbage-bytes": lambda rt, path: rt.InferenceSession(b"this is not an ONNX model\n" * 10),
    "not-a-path": lambda rt, path: rt.InferenceSession(12),
    "bad-input-name": lambda rt, path: rt.InferenceSession(path).run(None, {"input": FEED, "pixles": FEED}),
    "missing-feed": lambda rt, path: rt.InferenceSession(path).run(None, {}),
    "bad-output-name": lambda rt, path: rt.InferenceSession(path).run(["nope"], {"input": FEED}),
    "wrong-dtype": lambda rt, path: rt.InferenceSession(path).run(None, {"input": FEED.astype(np.float64)}),
    "wrong-rank": lambda rt, path: rt.InferenceSession(path).run(None, {"input": FEED[0]}),
    "wrong-dim": lambda rt, path: rt.InferenceSession(path).run(None, {"input": FEED[:, :15]}),
}


def raised(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_onnx_runtimes_classes(tmp_path, case):
    path = models.save(models.mlp(), tmp_path / "model.onnx")
    call = ERROR_CASES[case]
    expected = raised(lambda: call(onnxruntime, path))
    got = raised(lambda: call(kerf, path))
    assert type(got).__name__ == type(expected).__name__, (got, expected)
    if type(expected).__module__.startswith("onnxruntime.capi"):
        assert type(got) is getattr(kerf_errors, type(expected).__name__)
        assert isinstance(got, kerf.KerfError) and got.message
    else:
        assert isinstance(got, type(expected))


def test_terminated_run_fails_as_in_onnx_runtime(tmp_path):
    path = models.save(models.mlp(), tmp_path / "model.onnx")
    errors = []
    for rt in (onnxruntime, kerf):
        options = rt.RunOptions()
        options.terminate = True
        errors.append(raised(lambda: rt.InferenceSession(path).run(None, {"input": FEED}, options)))
    assert [type(error).__name__ for error in errors] == ["Fail", "Fail"]


def test_other_providers_are_ignored_with_a_warning(tmp_path):
    path = models.save(models.mlp(), tmp_path / "model.onnx")
    with pytest.warns(UserWarning) as record:
        session = kerf.InferenceSession(path, providers=["CUDAExecutionProvider", ("TensorrtExecutionProvider", {})])
    message = " ".join(str(w.message) for w in record)
    assert "CUDAExecutionProvider" in message and "TensorrtExecutionProvider" in message
    assert session.get_providers() == ["CPUExecutionProvider"]
    expected = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": FEED + 1})
    close(session.run(None, {"input": FEED + 1}), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kerf.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_options_kerf_cannot_honour_warn(tmp_path):
    path = models.save(models.mlp(), tmp_path / "model.onnx")
    for attribute, value in (("enable_profiling", True), ("optimized_model_filepath", str(tmp_path / "opt.onnx"))):
        options = kerf.SessionOptions()
        setattr(options, attribute, value)
        with pytest.warns(UserWarning, match=attribute):
            kerf.InferenceSession(path, options)
    assert not (tmp_path / "opt.onnx").exists()


def test_options_have_onnx_runtimes_attributes_and_defaults():
    ours, theirs = kerf.SessionOptions(), onnxruntime.SessionOptions()
    for name in kerf.SessionOptions._DEFAULTS:
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in kerf.RunOptions._DEFAULTS:
        assert getattr(kerf.RunOptions(), name) == getattr(onnxruntime.RunOptions(), name), name
    with pytest.raises(AttributeError):
        ours.intra_op_threads = 2  # a misspelling is refused, as by ONNX Runtime
    for options in (ours, theirs):
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        with pytest.raises(RuntimeError):
            options.get_session_config_entry("session.no_such_entry")


def test_an_op_kerf_cannot_run_is_not_implemented():
    # ONNX Runtime raises NotImplemented for an op it has no kernel for, InvalidGraph for one ONNX
    # does not define; Kerf's status does not tell the two apart.
    with pytest.raises(kerf_errors.NotImplemented, match="FooBar") as info:
        kerf.InferenceSession(models.unknown_op().SerializeToString())
    assert isinstance(info.value, kerf.KerfError) and info.value.status == kerf.Status.UNSUPPORTED


def test_onnx_runtime_session_options_are_read(tmp_path):
    path = models.save(models.cnn(), tmp_path / "model.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = kerf.InferenceSession(path, options)
    assert "BatchNormalization" in session._session.plan()
    assert session.get_session_options() is options
