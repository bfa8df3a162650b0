"""Kerf's int8 CNN operators against ONNX Runtime on the same QDQ files: the fused int8 Add
(kerf.QuantizedAdd, as QLinearAdd) and GlobalAveragePool (kerf.QuantizedGlobalAveragePool, as
QLinearGlobalAveragePool), and kerf.QuantizedConv over the window shapes its fast paths
distinguish (1x1 stride 1 without im2row, padded, strided, dilated, grouped), at 1 and 2
threads. Outputs agree with ONNX Runtime within one quantization step of the output (see
test_int8_runtime.py), are identical at 1 and 2 threads, and the plan shows the fused ops ran."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType

import kerf
import channel_models
from test_int8_runtime import (assert_within_one_step, check_optimized, count, gaussian, output_step, run_ort,
                               static_quantized)

TYPES = [pytest.param(TensorProto.UINT8, np.uint8, id="uint8"), pytest.param(TensorProto.INT8, np.int8, id="int8")]


def ort_run(path, feeds):
    """ONNX Runtime's outputs for the file as written (graph optimizations disabled), the
    reference for int8 files: its fused int8 kernels round differently per CPU (`check_optimized`)."""
    return run_ort(path, feeds, optimized=False)


def qdq_model(tmp_path, name, inputs, body, onnx_type, np_type, y_scale=0.04):
    """inputs: [(name, shape, scale, zero)] quantized then dequantized; body(nodes, dq_names) -> float
    output name; the output is quantized with (y_scale, zero) and dequantized."""
    zero = 3 if np_type == np.int8 else 120
    nodes, inits, dqs = [], [], []
    for n, _, scale, z in inputs:
        inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{n}_s"), numpy_helper.from_array(np.array(z, np_type), f"{n}_z")]
        nodes += [helper.make_node("QuantizeLinear", [n, f"{n}_s", f"{n}_z"], [f"{n}_q"]),
                  helper.make_node("DequantizeLinear", [f"{n}_q", f"{n}_s", f"{n}_z"], [f"{n}_dq"])]
        dqs.append(f"{n}_dq")
    out = body(nodes, dqs)
    inits += [numpy_helper.from_array(np.array(y_scale, np.float32), "y_s"), numpy_helper.from_array(np.array(zero, np_type), "y_z")]
    nodes += [helper.make_node("QuantizeLinear", [out, "y_s", "y_z"], ["y_q"]),
              helper.make_node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s, _, _ in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = str(tmp_path / f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


@pytest.mark.parametrize("onnx_type, np_type", TYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("b_shape", [[2, 8, 5, 5], [1, 8, 1, 1]], ids=["same-shape", "broadcast"])
def test_quantized_add(tmp_path, onnx_type, np_type, relu, b_shape):
    za, zb = (-5, 7) if np_type == np.int8 else (128, 100)

    def body(nodes, dqs):
        nodes.append(helper.make_node("Add", dqs, ["sum"]))
        if not relu:
            return "sum"
        nodes.append(helper.make_node("Relu", ["sum"], ["act"]))
        return "act"

    path = qdq_model(tmp_path, "add", [("a", [2, 8, 5, 5], 0.0213, za), ("b", b_shape, 0.0317, zb)], body, onnx_type, np_type,
                     y_scale=0.0409)
    rng = np.random.default_rng(1)
    feeds = {"a": rng.standard_normal((2, 8, 5, 5)).astype(np.float32) * 2, "b": rng.standard_normal(b_shape).astype(np.float32) * 2}
    session = kerf.load(path).session()
    actual = list(session.run(feeds).values())[0]
    assert_within_one_step(ort_run(path, feeds)[0], actual, 0.0409)
    if relu:
        assert actual.min() >= 0
    plan = session.plan()
    assert count(plan, "kerf.QuantizedAdd") == 1 and not {"Add", "Relu"} & set(plan), plan


@pytest.mark.parametrize("onnx_type, np_type", TYPES)
def test_quantized_global_average_pool(tmp_path, onnx_type, np_type):
    def body(nodes, dqs):
        nodes.append(helper.make_node("GlobalAveragePool", dqs, ["mean"]))
        return "mean"

    zero = -20 if np_type == np.int8 else 60
    path = qdq_model(tmp_path, "gap", [("x", [3, 16, 7, 6], 0.05, zero)], body, onnx_type, np_type, y_scale=0.01)
    feeds = {"x": np.random.default_rng(2).standard_normal((3, 16, 7, 6)).astype(np.float32) * 3 + 0.5}
    session = kerf.load(path).session()
    actual = list(session.run(feeds).values())[0]
    expected = ort_run(path, feeds)[0]
    assert actual.shape == expected.shape == (3, 16, 1, 1)
    assert_within_one_step(expected, actual, 0.01)
    plan = session.plan()
    assert count(plan, "kerf.QuantizedGlobalAveragePool") == 1 and "GlobalAveragePool" not in plan, plan


def conv_zoo():
    """Convs of every window kind QuantizedConv handles: 1x1 stride 1 (no im2row), 3x3 padded,
    5x5 stride 2, dilated 3x3, grouped 3x3, 1x1 stride 2."""
    b = channel_models.Builder(3)

    def conv(x, c, m, name, k, **attrs):
        w = b.rng.normal(0, np.sqrt(2 / (c * k * k // attrs.get("group", 1))), (m, c // attrs.get("group", 1), k, k)).astype(np.float32)
        bias = b.rng.normal(0, 0.1, m).astype(np.float32)
        return b.node("Relu", [b.node("Conv", [x, b.const(name + ".w", w), b.const(name + ".b", bias)], name=name, **attrs)])

    h = conv("x", 3, 16, "c0", 3, pads=[1, 1, 1, 1])
    h = conv(h, 16, 24, "pointwise", 1)
    h = conv(h, 24, 24, "c5", 5, pads=[2, 2, 2, 2], strides=[2, 2])
    h = conv(h, 24, 24, "dilated", 3, pads=[2, 2, 2, 2], dilations=[2, 2])
    h = conv(h, 24, 24, "grouped", 3, pads=[1, 1, 1, 1], group=3)
    h = conv(h, 24, 32, "stride2", 1, strides=[2, 2])
    return b.model(["N", 3, 32, 32], h)


@pytest.mark.parametrize("activation", [QuantType.QUInt8, QuantType.QInt8], ids=["U8S8", "S8S8"])
def test_quantized_conv_window_kinds_and_threads(tmp_path, activation):
    path = static_quantized(conv_zoo(), tmp_path, "zoo", [gaussian((4, 3, 32, 32), s) for s in range(3)], activation, True)
    model = kerf.load(path)
    for batch in (1, 3):
        feeds = gaussian((batch, 3, 32, 32), 10 + batch)
        expected = ort_run(path, feeds)[0]
        one, two = model.session(threads=1), model.session(threads=2)
        actual = list(one.run(feeds).values())[0]
        assert_within_one_step(expected, actual, output_step(path))
        check_optimized(path, feeds, [actual], absolute=output_step(path) * 1.001)
        np.testing.assert_array_equal(list(two.run(feeds).values())[0], actual)
    # c0, the RGB stem (27 products per output), stays a float island.
    assert count(one.plan(), "kerf.QuantizedConv") == 5 and count(one.plan(), "kerf.NhwcConv") == 1, one.plan()
    assert "Conv" not in one.plan(), one.plan()


def depthwise_qdq(tmp_path, onnx_type, np_type, channels, kernel, stride, activation):
    """x (QDQ) -> DequantizeLinear(int8 W, per channel) -> depthwise Conv (group = channels,
    int32 bias) -> activation -> QuantizeLinear -> DequantizeLinear: the form Kerf's quantizer
    writes where an activation without an integer form (HardSwish, Sigmoid) follows a Conv."""
    rng = np.random.default_rng(channels + kernel)
    x_scale, x_zero = 0.031, (5 if np_type == np.int8 else 131)
    w = rng.normal(0, 0.4, (channels, 1, kernel, kernel)).astype(np.float32)
    w_scale = (np.abs(w).reshape(channels, -1).max(axis=1) / 127).astype(np.float32)
    wq = np.round(w / w_scale[:, None, None, None]).astype(np.int8)
    bias = np.round(rng.normal(0, 0.2, channels) / (x_scale * w_scale)).astype(np.int32)
    inits = [numpy_helper.from_array(v, n) for n, v in [
        ("x_s", np.array(x_scale, np.float32)), ("x_z", np.array(x_zero, np_type)), ("wq", wq), ("w_s", w_scale),
        ("w_z", np.zeros(channels, np.int8)), ("bq", bias), ("b_s", (x_scale * w_scale).astype(np.float32)),
        ("b_z", np.zeros(channels, np.int32)), ("y_s", np.array(0.027, np.float32)), ("y_z", np.array(x_zero, np_type))]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "w_s", "w_z"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["bq", "b_s", "b_z"], ["bd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["conv"], group=channels, strides=[stride, stride],
                              pads=[kernel // 2] * 4)]
    out = "conv"
    if activation == "SiLU":  # as torch exports it
        nodes += [helper.make_node("Sigmoid", ["conv"], ["gate"]), helper.make_node("Mul", ["conv", "gate"], ["act"])]
        out = "act"
    elif activation:
        nodes.append(helper.make_node(activation, ["conv"], ["act"]))
        out = "act"
    nodes += [helper.make_node("QuantizeLinear", [out, "y_s", "y_z"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["y"])]
    graph = helper.make_graph(nodes, "depthwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 13, 11])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = str(tmp_path / f"depthwise_{channels}_{kernel}_{activation}.onnx")
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("onnx_type, np_type", TYPES)
@pytest.mark.parametrize("channels, kernel, stride, activation", [
    (40, 3, 1, None), (32, 3, 2, "Relu"), (24, 5, 2, "HardSwish"), (48, 5, 1, "Sigmoid"), (19, 3, 1, "HardSigmoid"),
    (56, 3, 1, "SiLU")],
    ids=["3x3", "3x3-s2-relu", "5x5-s2-hardswish", "5x5-sigmoid", "odd-channels-hardsigmoid", "silu"])
def test_depthwise_conv_and_float_activation_in_the_epilogue(tmp_path, onnx_type, np_type, channels, kernel, stride, activation):
    """Depthwise convolutions stay float islands, as the file writes them (DequantizeLinear ->
    float Conv -> QuantizeLinear: oneDNN's float kernel beats int8 products there), with an
    activation between the Conv and its QuantizeLinear in the Conv's step: within one output
    step of the file's meaning (ONNX Runtime, optimizations off), equal at 1 and 2 threads."""
    path = depthwise_qdq(tmp_path, onnx_type, np_type, channels, kernel, stride, activation)
    model = kerf.load(path)
    for batch in (1, 3):
        feeds = gaussian((batch, channels, 13, 11), 20 + batch)
        expected = ort_run(path, feeds)[0]
        one = model.session(threads=1)
        actual = list(one.run(feeds).values())[0]
        assert actual.shape == expected.shape
        assert_within_one_step(expected, actual, 0.027)
        np.testing.assert_array_equal(list(model.session(threads=2).run(feeds).values())[0], actual)
    plan = one.plan()
    assert count(plan, "kerf.QuantizedConv") == 0 and plan.count("kerf.NhwcConv") == 1, plan
    assert not {"Conv", "Sigmoid", "Mul", activation} & set(plan), plan


@pytest.mark.parametrize("activation", ["SiLU", "HardSwish", "HardSigmoid", "Sigmoid"])
def test_float_conv_activations_are_fused_and_match_onnxruntime(tmp_path, activation):
    """Float Conv -> activation (SiLU as torch writes it: Mul(x, Sigmoid(x))) runs as one step,
    within float tolerance of ONNX Runtime, and a SiLU after a non-Conv (an Add) runs as one
    kerf.SiLU step; inputs reach far into both tails (|x| up to about 100)."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.normal(0, 1.5, (16, 8, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.5, 16).astype(np.float32), "b")

    def act(x, y):
        if activation == "SiLU":
            return [helper.make_node("Sigmoid", [x], [y + "_gate"]), helper.make_node("Mul", [y + "_gate", x], [y])]
        return [helper.make_node(activation, [x], [y])]

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1])] + act("conv", "y")
    nodes += [helper.make_node("Add", ["y", "x2"], ["sum"])] + act("sum", "z")
    graph = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 9, 9]),
                                              helper.make_tensor_value_info("x2", TensorProto.FLOAT, [2, 16, 9, 9])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w, bias])
    path = str(tmp_path / "acts.onnx")
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
    feeds = {"x": rng.normal(0, 3, (2, 8, 9, 9)).astype(np.float32), "x2": rng.normal(0, 30, (2, 16, 9, 9)).astype(np.float32)}
    expected = run_ort(path, feeds, optimized=False)[0]
    session = kerf.load(path).session(threads=1)
    actual = list(session.run(feeds).values())[0]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)  # sums of 72 products up to about 50
    plan = session.plan()
    # The Conv's activation is in its step; the one after the Add runs on its own.
    if activation == "SiLU":
        assert plan.count("kerf.SiLU") == 1 and not {"Sigmoid", "Mul"} & set(plan), plan
    else:
        assert plan.count(activation) == 1, plan


@pytest.mark.parametrize("opset", [17, 18], ids=["axes-attribute", "axes-input"])
def test_squeeze_excitation_with_reduce_mean_runs_as_global_average_pool(tmp_path, opset):
    """The dynamo exporter writes a squeeze-excitation's pooling as ReduceMean over the spatial
    axes: it runs as GlobalAveragePool (channels-last with the Convs around it), float and in
    Kerf's static int8 file, with ONNX Runtime's results."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(v, n) for n, v in [
        ("w", rng.normal(0, 0.3, (16, 8, 3, 3)).astype(np.float32)), ("b", rng.normal(0, 0.1, 16).astype(np.float32)),
        ("w1", rng.normal(0, 0.3, (4, 16, 1, 1)).astype(np.float32)), ("w2", rng.normal(0, 0.3, (16, 4, 1, 1)).astype(np.float32)),
        ("w3", rng.normal(0, 0.3, (8, 16, 1, 1)).astype(np.float32)), ("axes", np.array([-2, -1], np.int64))]]
    mean = (helper.make_node("ReduceMean", ["h", "axes"], ["pooled"], keepdims=1) if opset >= 18 else
            helper.make_node("ReduceMean", ["h"], ["pooled"], axes=[2, 3], keepdims=1))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h0"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["h0"], ["h"]), mean,
             helper.make_node("Conv", ["pooled", "w1"], ["s1"]), helper.make_node("Relu", ["s1"], ["s2"]),
             helper.make_node("Conv", ["s2", "w2"], ["s3"]), helper.make_node("Sigmoid", ["s3"], ["gate"]),
             helper.make_node("Mul", ["h", "gate"], ["scaled"]), helper.make_node("Conv", ["scaled", "w3"], ["y"])]
    graph = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits if opset >= 18 else inits[:-1])
    path = str(tmp_path / "se.onnx")
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", opset)]), path)
    feeds = {"x": rng.normal(0, 1, (2, 8, 12, 12)).astype(np.float32)}
    session = kerf.load(path).session(threads=1)
    actual = list(session.run(feeds).values())[0]
    expected = run_ort(path, feeds, optimized=False)[0]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    assert "ReduceMean" not in session.plan() and count(session.plan(), "kerf.GlobalAveragePool") + \
        session.plan().count("GlobalAveragePool") == 1, session.plan()
    int8 = str(tmp_path / "se_int8.onnx")
    kerf.quantize(path, int8, mode="static", calibration={"x": rng.normal(0, 1, (16, 8, 12, 12)).astype(np.float32)})
    int8_session = kerf.load(int8).session(threads=1)
    got = list(int8_session.run(feeds).values())[0]
    # The last Conv's output stays float: its int8 products equal the file's float arithmetic up
    # to rounding, unless an upstream requantization tie rounded the other way.
    want = run_ort(int8, feeds, optimized=False)[0]
    diff, scale = np.abs(got - want), np.abs(want).max()
    assert diff.max() <= 0.02 * scale and np.mean(diff <= 1e-4 * scale) >= 0.95, (diff.max(), scale)
    assert "ReduceMean" not in int8_session.plan(), int8_session.plan()


@pytest.mark.parametrize("attrs", [dict(pads=[1, 1]), dict(strides=[2], pads=[2, 1], dilations=[2]), dict(group=4, pads=[1, 1])],
                         ids=["padded", "strided-dilated", "grouped"])
def test_float_conv1d_matches_onnxruntime(tmp_path, attrs):
    """1-D convolutions (Whisper's front end) run as 2-D ones over images of height 1, with the
    bias and a fused Relu, at batch 1 and 3."""
    rng = np.random.default_rng(9)
    group = attrs.get("group", 1)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (16, 8 // group, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 37])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = str(tmp_path / "conv1d.onnx")
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
    session = kerf.load(path).session(threads=1)
    for batch in (1, 3):
        feeds = {"x": rng.normal(0, 1, (batch, 8, 37)).astype(np.float32)}
        expected = run_ort(path, feeds, optimized=False)[0]
        actual = list(session.run(feeds).values())[0]
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
