"""kerf.quantization against onnxruntime.quantization: ONNX Runtime's documented quantization
examples with only the import changed write files that pass onnx.checker, run in ONNX Runtime and
in Kerf, and stay close to the float model (as ONNX Runtime's own quantizer's files do). The
files are not compared with ONNX Runtime's bit for bit: the quantizers choose differently."""

import os
import warnings

import numpy as np
import onnx
import onnxruntime.quantization
import pytest

import kerf
import kerf.quantization
import models
from int8_reference import file_meaning
from ort_examples import run_example
from test_quantize import cosine, run_kerf

MODULES = ["onnxruntime", "kerf"]

# https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html, dynamic quantization
DYNAMIC = """
import onnx
from onnxruntime.quantization import quantize_dynamic, QuantType

model_fp32 = 'model.onnx'
model_quant = 'model.quant.onnx'
quantized_model = quantize_dynamic(model_fp32, model_quant, weight_type=getattr(QuantType, weight_type))
"""

# onnxruntime-inference-examples quantization/image_classification/cpu: resnet50_data_reader.py
# (random images for the preprocessed folder) and run.py.
STATIC = """
import numpy
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class DataReader(CalibrationDataReader):
    def __init__(self, calibration_image_folder, model_path):
        self.enum_data = None
        session = onnxruntime.InferenceSession(model_path, None)
        (_, _, height, width) = session.get_inputs()[0].shape
        self.nchw_data_list = calibration_image_folder(height, width)
        self.input_name = session.get_inputs()[0].name
        self.datasize = len(self.nchw_data_list)

    def get_next(self):
        if self.enum_data is None:
            self.enum_data = iter([{self.input_name: nchw_data} for nchw_data in self.nchw_data_list])
        return next(self.enum_data, None)

    def rewind(self):
        self.enum_data = None


dr = DataReader(images, "model.onnx")
quantize_static("model.onnx", "model.quant.onnx", dr, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                weight_type=QuantType.QInt8, calibrate_method=method)
"""


def images(height, width):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3, height, width)).astype(np.float32) for _ in range(16)]


def run_in(folder, monkeypatch, example, module, model, **names):
    """Runs `example` with `module` in `folder` holding `model` as model.onnx; returns the
    quantized file's path."""
    os.makedirs(folder)
    models.save(model, folder / "model.onnx")
    monkeypatch.chdir(folder)
    run_example(example, module, **names)
    return folder / "model.quant.onnx"


def check(path, feeds, expected, op_type, bound=0.99):
    """The file at `path` passes full_check, contains `op_type`, and its outputs in ONNX Runtime
    (as written) and in Kerf have cosine > bound with the float model's `expected`."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert op_type in {node.op_type for node in model.graph.node}
    for outputs in (file_meaning(model, feeds), run_kerf(path, feeds)):
        for name, value in expected.items():
            assert cosine(outputs[name], value) > bound, name
    return model


@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_dynamic_example(tmp_path, monkeypatch, digits, weight_type):
    path, x, y = digits
    model = onnx.load(str(path))
    feeds = {"X": x}
    expected = models.run_ort(model, feeds)
    files = {}
    for module in MODULES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            files[module] = run_in(tmp_path / module, monkeypatch, DYNAMIC, module, model, weight_type=weight_type)
    # Kerf's weights are int8 whatever weight_type asks, and it says so.
    assert any("QUInt8" in str(w.message) for w in caught) == (weight_type == "QUInt8")
    for module, file in files.items():
        check(file, feeds, {"probabilities": expected["probabilities"]}, "MatMulInteger")
        float_accuracy = np.mean(expected["label"] == y)
        assert np.mean(run_kerf(file, feeds)["label"] == y) >= float_accuracy - 0.01, module


@pytest.mark.parametrize("method,per_channel", [("MinMax", True), ("Entropy", False), ("Percentile", True)])
def test_static_example(tmp_path, monkeypatch, method, per_channel):
    model = models.cnn(size=16)
    feeds = {"image": np.concatenate(images(16, 16)[:8]) * 0.9}
    expected = models.run_ort(model, feeds)
    for module, package in (("onnxruntime", onnxruntime.quantization), ("kerf", kerf.quantization)):
        file = run_in(tmp_path / module, monkeypatch, STATIC, module, model, images=images, per_channel=per_channel,
                      method=getattr(package.CalibrationMethod, method))
        quantized = check(file, feeds, expected, "QuantizeLinear")
        weights = {init.name: init for init in quantized.graph.initializer}
        assert any(init.data_type == onnx.TensorProto.INT8 for init in weights.values()), module


class Reader(onnxruntime.quantization.CalibrationDataReader):
    """A reader written for ONNX Runtime (its base class), handed to Kerf as is."""

    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def quantize_cnn(tmp_path, **options):
    src = models.save(models.cnn(), tmp_path / "cnn.onnx")
    feeds = [{"image": image} for image in images(8, 8)]
    return kerf.quantization.quantize_static(src, tmp_path / "q.onnx", Reader(feeds), **options)


def test_nodes_to_exclude_and_nodes_to_quantize(tmp_path):
    report = quantize_cnn(tmp_path, nodes_to_exclude=["fc"])
    assert {"name": "fc", "reason": "excluded"} in report.float and "fc" not in [n.name for n in report.nodes]
    report = quantize_cnn(tmp_path, nodes_to_quantize=["fc"])
    assert [n.name for n in report.nodes] == ["fc"]
    report = quantize_cnn(tmp_path, op_types_to_quantize=["Gemm"])
    assert [n.op_type for n in report.nodes] == ["Gemm"]


def test_options_reach_kerf(tmp_path):
    report = quantize_cnn(tmp_path, activation_type=kerf.quantization.QuantType.QUInt8, per_channel=True,
                          calibrate_method=onnxruntime.quantization.CalibrationMethod.Entropy)
    assert (report.activation_type, report.per_channel, report.method) == ("uint8", True, "entropy")
    report = quantize_cnn(tmp_path)  # ONNX Runtime's defaults
    assert (report.activation_type, report.per_channel, report.method) == ("int8", False, "minmax")


@pytest.mark.parametrize("options", [
    {"quant_format": kerf.quantization.QuantFormat.QOperator},
    {"calibrate_method": kerf.quantization.CalibrationMethod.Distribution},
    {"activation_type": kerf.quantization.QuantType.QInt16},
    {"weight_type": kerf.quantization.QuantType.QInt4},
    {"calibration_cache_path": "ranges.json"},
], ids=["QOperator", "Distribution", "QInt16", "QInt4", "cache"])
def test_what_kerf_cannot_write_is_not_implemented(tmp_path, options):
    with pytest.raises(NotImplementedError):
        quantize_cnn(tmp_path, **options)
    assert not (tmp_path / "q.onnx").exists()


def test_ignored_options_warn(tmp_path):
    with pytest.warns(UserWarning) as record:
        quantize_cnn(tmp_path, reduce_range=True, extra_options={"ActivationSymmetric": True})
    message = " ".join(str(w.message) for w in record)
    assert "reduce_range" in message and "ActivationSymmetric" in message
    assert (tmp_path / "q.onnx").exists()


def test_model_proto_input(tmp_path, digits):
    path, x, _ = digits
    out = tmp_path / "q.onnx"
    report = kerf.quantization.quantize_dynamic(onnx.load(str(path)), out)
    assert [n.op_type for n in report.nodes] == ["MatMul", "MatMul"]
    expected = models.run_ort(onnx.load(str(path)), {"X": x})["probabilities"]
    assert cosine(run_kerf(out, {"X": x})["probabilities"], expected) > 0.99


def test_errors_are_onnx_runtime_classes(tmp_path):
    with pytest.raises(kerf.capi.onnxruntime_pybind11_state.NoSuchFile):
        kerf.quantization.quantize_dynamic(tmp_path / "missing.onnx", tmp_path / "q.onnx")
