"""Kerf runs int8 models made by ONNX Runtime's quantizer (dynamic, and static QDQ with uint8 or
int8 activations, per-tensor or per-channel weights) with its fused int8 kernels, and agrees
with ONNX Runtime on the same file.

The reference is ONNX Runtime running the file as written (graph optimizations disabled), the
file's exact meaning; its optimized run (fused int8 kernels, CPU-dependent) is compared
separately by `check_optimized`. Tolerances: the dynamic form gives ONNX Runtime's float operations in the same order, so an MLP
agrees exactly; through LayerNorm / Softmax (float kernels that round differently) a dynamic
quantization step can flip, so the BERT-style model allows 2 % of the output range. Static
models may differ by one requantization rounding, so outputs must agree within one step of the
output's quantization scale (with one such step allowed per element, and at most 5 % of the
elements off at all). Every test also checks the session's plan: the int8 operators ran, and no
float product or stand-alone (de)quantization of a weight is left."""

import os
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

import kerf
import channel_models
import transformer_models
from int8_reference import file_meaning, same_int8_products

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts"))
from bench_prune import big_mlp  # noqa: E402


class Feeds(CalibrationDataReader):
    def __init__(self, batches):
        self.batches = iter(batches)

    def get_next(self):
        return next(self.batches, None)


def gaussian(shape, seed):
    return {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def static_quantized(model, tmp_path, name, calibration, activation, per_channel, prepare=True):
    """ONNX Runtime's quantize_static QDQ file of `model`; without `prepare` (quant_pre_process,
    which folds BatchNormalization into Conv) as users who skip it get it."""
    source, prepared, out = (str(tmp_path / f"{name}{suffix}.onnx") for suffix in ("", "_prep", "_int8"))
    onnx.save(model, source)
    if prepare:
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
    else:
        prepared = source
    quantize_static(prepared, out, Feeds(calibration), quant_format=QuantFormat.QDQ, activation_type=activation,
                    weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


def dynamic_quantized(model, tmp_path, name):
    source, out = str(tmp_path / f"{name}.onnx"), str(tmp_path / f"{name}_dyn.onnx")
    onnx.save(model, source)
    quantize_dynamic(source, out, weight_type=QuantType.QInt8)
    return out


def run_ort(path, feeds, optimized):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, feeds)


def run_both(path, feeds):
    """The file's exact meaning (`file_meaning`: ONNX Runtime with graph optimizations disabled,
    each QuantizeLinear, DequantizeLinear and float op on its own, or onnx's reference evaluator
    where ONNX Runtime's integer products saturate), then Kerf's outputs and plan. ONNX Runtime's
    optimized run fuses QDQ into int8 kernels whose results depend on the CPU (see
    `same_int8_products`); `check_optimized` compares with it where that is meaningful."""
    expected = list(file_meaning(path, feeds).values())
    session = kerf.load(path).session()
    return expected, list(session.run(feeds).values()), session.plan()


def check_optimized(path, feeds, actual, relative=0.0, absolute=0.0):
    """Kerf against ONNX Runtime's optimized run (its fused int8 kernels) on the same file:
    within `relative` of each output's range plus `absolute` where both engines compute int8
    products the same way (`same_int8_products`); elsewhere ONNX Runtime's own departure from
    the file's meaning (`file_meaning`) is what separates them, so Kerf may be no further from it
    than that departure plus the tolerance."""
    optimized = run_ort(path, feeds, optimized=True)
    exact = list(file_meaning(path, feeds).values())
    for o, e, a in zip(optimized, exact, actual):
        allowed = relative * np.abs(o).max() + absolute
        if not same_int8_products:
            allowed += np.abs(o - e).max()
        assert np.abs(o - a).max() <= allowed, (np.abs(o - a).max(), allowed)


def assert_same_integer_products(path, feeds, expected, actual):
    """Dynamic files (MatMulInteger): Kerf's integer products are exact, so it agrees bit for
    bit with ONNX Runtime where that computes them exactly too (`same_int8_products`). Elsewhere
    `expected` is onnx's reference evaluator (`file_meaning`): Kerf's fused run equals its own
    operator-by-operator run and is within float rounding of the reference."""
    if same_int8_products:
        for e, a in zip(expected, actual):
            np.testing.assert_array_equal(a, e)
        return
    unfused = list(kerf.load(path).session(optimize=False).run(feeds).values())
    for e, a, u in zip(expected, actual, unfused):
        np.testing.assert_array_equal(a, u)
        assert np.abs(e - a).max() <= 1e-5 * np.abs(e).max(), np.abs(e - a).max()


def output_step(path):
    """Scale of the QuantizeLinear whose DequantizeLinear makes the graph output."""
    model = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dq = producer[model.graph.output[0].name]
    assert dq.op_type == "DequantizeLinear"
    return float(inits[dq.input[1]])


def assert_within_one_step(expected, actual, step):
    diff = np.abs(expected.astype(np.float64) - actual)
    assert diff.max() <= step * 1.001, f"max diff {diff.max()} > one step {step}"
    assert np.mean(diff > step / 2) <= 0.05, f"{np.mean(diff > step / 2):.1%} of the outputs are a step off"


def count(plan, op):
    """How many steps run `op`, in either layout (convolutions and pools run channels-last as
    kerf.NhwcQuantizedConv, kerf.NhwcMaxPool, ...)."""
    name = op.split(".")[-1]
    return sum(1 for p in plan if p in (op, f"kerf.Nhwc{name}"))


# MARK: - Dynamic


def test_dynamic_mlp_is_exact_and_fused(tmp_path):
    path = dynamic_quantized(big_mlp((64, 256, 256, 10)), tmp_path, "mlp")
    for batch in (1, 7, 300):  # 300 rows: several row blocks, whose ranges make the next layer's
        feeds = gaussian((batch, 64), batch)
        expected, actual, plan = run_both(path, feeds)
        assert_same_integer_products(path, feeds, expected, actual)
        check_optimized(path, feeds, actual)
    assert count(plan, "kerf.DynamicQuantizedMatMul") == 3
    # The Relus run in the products' epilogues, whose output ranges spare the next layer a pass.
    assert not {"MatMulInteger", "DynamicQuantizeLinear", "Cast", "Mul", "Add", "Relu"} & set(plan), plan


def test_dynamic_bert_rank3_matmuls(tmp_path):
    model = transformer_models.bert_encoder(layers=1, hidden=64, heads=2, ffn=128, vocab=50, max_positions=16)
    path = dynamic_quantized(model, tmp_path, "bert")
    feeds = transformer_models.bert_feeds(2, 16, vocab=50)
    expected, actual, plan = run_both(path, feeds)
    for e, a in zip(expected, actual):
        scale = np.abs(e).max()
        assert np.abs(e - a).max() <= 0.02 * scale, np.abs(e - a).max()
    check_optimized(path, feeds, actual, relative=0.02)
    # Q, K, V, output projection and the two FFN layers, on [batch, seq, hidden] inputs.
    assert count(plan, "kerf.DynamicQuantizedMatMul") >= 6, plan


# MARK: - Static QDQ


STATIC_FORMS = [
    pytest.param(QuantType.QUInt8, False, id="U8S8-per-tensor"),
    pytest.param(QuantType.QUInt8, True, id="U8S8-per-channel"),
    pytest.param(QuantType.QInt8, False, id="S8S8-per-tensor"),
    pytest.param(QuantType.QInt8, True, id="S8S8-per-channel"),
]


@pytest.mark.parametrize("activation, per_channel", STATIC_FORMS)
def test_static_mlp(tmp_path, activation, per_channel):
    model = channel_models.mlp(sizes=(64, 256, 256, 10))
    path = static_quantized(model, tmp_path, "mlp", [gaussian((16, 64), s) for s in range(4)], activation, per_channel)
    feeds = gaussian((9, 64), 99)
    expected, actual, plan = run_both(path, feeds)
    assert_within_one_step(expected[0], actual[0], output_step(path))
    check_optimized(path, feeds, actual, absolute=output_step(path) * 1.001)
    assert count(plan, "kerf.QuantizedMatMul") == 3, plan
    assert not {"Gemm", "MatMul"} & set(plan), plan
    assert count(plan, "DequantizeLinear") == 1 and count(plan, "QuantizeLinear") == 1, plan


def small_resnet(seed=0):
    """Conv-BN-Relu stem, MaxPool, two residual basic blocks (one strided, with a 1x1
    projection), GlobalAveragePool, Flatten, Gemm — channel_models' builder."""
    b = channel_models.Builder(seed)
    h = b.node("Relu", [b.bn(b.conv("x", 3, 16, "stem"), 16, "stem.bn")])
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    c = 16
    for i, (width, stride) in enumerate([(16, 1), (32, 2)]):
        t = b.node("Relu", [b.bn(b.conv(h, c, width, f"b{i}.conv1", stride=stride), width, f"b{i}.bn1")])
        t = b.bn(b.conv(t, width, width, f"b{i}.conv2"), width, f"b{i}.bn2")
        short = h if stride == 1 else b.bn(b.conv(h, c, width, f"b{i}.proj", k=1, stride=stride), width, f"b{i}.proj.bn")
        h = b.node("Relu", [b.node("Add", [t, short])])
        c = width
    out = b.gemm(b.node("Flatten", [b.node("GlobalAveragePool", [h])]), c, 10, "fc")
    return b.model(["N", 3, 32, 32], out)


@pytest.mark.parametrize("activation, per_channel", STATIC_FORMS)
def test_static_resnet(tmp_path, activation, per_channel):
    path = static_quantized(small_resnet(), tmp_path, "cnn", [gaussian((4, 3, 32, 32), s) for s in range(4)], activation, per_channel)
    feeds = gaussian((2, 3, 32, 32), 42)
    expected, actual, plan = run_both(path, feeds)
    assert_within_one_step(expected[0], actual[0], output_step(path))
    check_optimized(path, feeds, actual, absolute=output_step(path) * 1.001)
    # The 3x3 RGB stem (27 products per output) stays a float island: DequantizeLinear -> Conv ->
    # QuantizeLinear, as the file writes it.
    assert count(plan, "kerf.QuantizedConv") == 5 and count(plan, "kerf.NhwcConv") == 1, plan
    assert "kerf.NhwcQuantizedConv" in plan and plan.count("Transpose") == 2, plan  # channels-last from first Conv to GAP
    assert count(plan, "kerf.QuantizedMatMul") == 1, plan
    assert "Conv" not in plan and "Gemm" not in plan, plan
    assert count(plan, "MaxPool") == 1  # on int8 values, between its Q/DQ pair
    # The residual Adds and the pooling stay in int8: only the input's Q and the output's DQ are left.
    assert count(plan, "kerf.QuantizedAdd") == 2 and count(plan, "kerf.QuantizedGlobalAveragePool") == 1, plan
    assert not {"Add", "GlobalAveragePool"} & set(plan), plan
    assert count(plan, "DequantizeLinear") == 2 and count(plan, "QuantizeLinear") == 2, plan


@pytest.mark.parametrize("activation", [QuantType.QUInt8, QuantType.QInt8])
def test_static_resnet_without_preprocessing_runs_batchnorm_as_channel_tables(tmp_path, activation):
    """Without quant_pre_process each BatchNormalization sits between a DequantizeLinear and a
    QuantizeLinear: Kerf runs the three as one table lookup per channel, computed with the same
    kernels, so it agrees with ONNX Runtime as closely as the fused convs do."""
    path = static_quantized(small_resnet(), tmp_path, "cnn", [gaussian((4, 3, 32, 32), s) for s in range(4)], activation, True,
                            prepare=False)
    assert sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node) == 6
    for batch in (1, 3):
        feeds = gaussian((batch, 3, 32, 32), 40 + batch)
        expected, actual, plan = run_both(path, feeds)
        assert_within_one_step(expected[0], actual[0], output_step(path))
        check_optimized(path, feeds, actual, absolute=output_step(path) * 1.001)
    assert count(plan, "kerf.QuantizedChannelLookup") == 6 and "kerf.NhwcQuantizedConv" in plan, plan
    assert not {"BatchNormalization", "kerf.NhwcBatchNormalization"} & set(plan), plan
    assert count(plan, "DequantizeLinear") == 2 and count(plan, "QuantizeLinear") == 2, plan  # and the float stem's


def test_static_int8_kernels_agree_with_float_model(tmp_path):
    """Quality: the U8S8 per-channel ResNet stays close to the float model."""
    model = small_resnet()
    path = static_quantized(model, tmp_path, "cnn", [gaussian((4, 3, 32, 32), s) for s in range(4)], QuantType.QUInt8, True)
    feeds = gaussian((8, 3, 32, 32), 5)
    reference = kerf.load(str(tmp_path / "cnn.onnx")).session().run(feeds)
    quantized = kerf.load(path).session().run(feeds)
    r, q = list(reference.values())[0], list(quantized.values())[0]
    assert np.corrcoef(r.ravel(), q.ravel())[0, 1] > 0.99


def test_kerf_static_bert_runs_int8_products_with_their_bias(tmp_path):
    """Kerf's own static file writes MatMul -> Add(bias) on dequantized inputs: the bias joins the
    int8 product's float epilogue, and the result agrees with ONNX Runtime on the same file."""
    model = transformer_models.bert_encoder(layers=1, hidden=64, heads=2, ffn=128, vocab=50, max_positions=16)
    source, path = str(tmp_path / "bert.onnx"), str(tmp_path / "bert_int8.onnx")
    onnx.save(model, source)
    kerf.quantize(source, path, mode="static", calibration=[transformer_models.bert_feeds(2, 16, vocab=50, seed=k) for k in range(3)])
    written = onnx.load(path).graph
    producer = {o: n for n in written.node for o in n.output}
    constants = {i.name for i in written.initializer}
    bias_adds = [n for n in written.node if n.op_type == "Add" and any(
        producer.get(i) is not None and producer[i].op_type == "MatMul" for i in n.input) and any(i in constants for i in n.input)]
    assert len(bias_adds) == 6  # Q, K, V, output projection, FFN in, FFN out
    feeds = transformer_models.bert_feeds(2, 16, vocab=50, seed=7)
    expected, actual, plan = run_both(path, feeds)
    for e, a in zip(expected, actual):
        assert np.abs(e - a).max() <= 1e-3 * np.abs(e).max(), np.abs(e - a).max()
    check_optimized(path, feeds, actual, relative=1e-3)
    assert count(plan, "kerf.QuantizedMatMul") == 6, plan
    # No bias Add left (the float model's biases join its float MatMuls), and the layer's two
    # residual Adds join the int8 output projections.
    assert plan.count("Add") == kerf.load(source).session().plan().count("Add") - 2, plan


def test_channel_lookup_in_channels_first_layout_matches_onnx_runtime(tmp_path):
    """Q -> DQ -> BatchNormalization -> Relu -> Q -> DQ with no convolution around it: the
    per-channel tables run on NCHW bytes (channels not a multiple of 16), as ONNX Runtime's
    unfused float operators compute them."""
    rng = np.random.default_rng(3)
    channels = 5
    inits = [numpy_helper.from_array(np.float32(0.05), "s_in"), numpy_helper.from_array(np.uint8(120), "z_in"),
             numpy_helper.from_array(np.float32(0.03), "s_out"), numpy_helper.from_array(np.uint8(10), "z_out")]
    for name, values in [("gamma", rng.uniform(0.5, 2, channels)), ("beta", rng.normal(0, 1, channels)),
                         ("mean", rng.normal(0, 1, channels)), ("var", rng.uniform(0.5, 2, channels))]:
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xf"]),
             helper.make_node("BatchNormalization", ["xf", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "s_out", "z_out"], ["y"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 7, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, 7, 3])], inits)
    path = str(tmp_path / "bn.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    feeds = {"x": rng.normal(0, 3, (2, channels, 7, 3)).astype(np.float32)}
    expected, actual, plan = run_both(path, feeds)
    assert_within_one_step(expected[0], actual[0], 0.03)
    check_optimized(path, feeds, actual, absolute=0.03 * 1.001)
    assert plan.count("kerf.QuantizedChannelLookup") == 1 and "BatchNormalization" not in plan, plan


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_int8_ffn_computes_gelu_and_its_quantization_in_the_product_epilogue(tmp_path, mode):
    """The FFN's first int8 MatMul takes the GELU after it (and, static, the QuantizeLinear after
    that) into its epilogue: no Gelu step is left, the outputs agree with ONNX Runtime on the same
    file and with the unoptimized session (static: up to quantization steps that flip where the
    unfused graph divides by sqrt 2 and the GELU kernel multiplies by its inverse), and the row
    blocks split over 2 threads give the same bits."""
    model = transformer_models.bert_encoder(layers=2, hidden=64, heads=2, ffn=256, vocab=50, max_positions=40)
    source, path = str(tmp_path / "bert.onnx"), str(tmp_path / f"bert_{mode}.onnx")
    onnx.save(model, source)
    calibration = [transformer_models.bert_feeds(2, 40, vocab=50, seed=k) for k in range(3)] if mode == "static" else None
    kerf.quantize(source, path, mode=mode, calibration=calibration)
    feeds = transformer_models.bert_feeds(3, 40, vocab=50, seed=11)  # 120 rows: several row blocks of the 256-wide FFN
    expected, actual, plan = run_both(path, feeds)
    assert "Gelu" not in plan and "Erf" not in plan, plan
    fused = "kerf.QuantizedMatMul" if mode == "static" else "kerf.DynamicQuantizedMatMul"
    assert count(plan, fused) == 12, plan
    # Q, K and V are written in the attention's head layout: the only Transposes left are the
    # attention outputs' (one per layer).
    assert plan.count("Transpose") == 2, plan
    # The residual Adds and the LayerNorms after them run in the output projections' epilogues:
    # only the embeddings' LayerNorm is left.
    assert plan.count("LayerNormalization") == 1, plan
    unfused = list(kerf.load(path).session(optimize=False).run(feeds).values())
    for e, a, u in zip(expected, actual, unfused):
        # The file as written divides by sqrt 2 where the fused GELU multiplies by its inverse,
        # so static quantization steps flip as they do against Kerf's own unfused run.
        assert np.abs(e - a).max() <= (2e-3 if mode == "dynamic" else 1e-2) * np.abs(e).max(), np.abs(e - a).max()
        assert np.abs(u - a).max() <= 1e-2 * np.abs(u).max(), np.abs(u - a).max()
    check_optimized(path, feeds, actual, relative=2e-3 if mode == "dynamic" else 1e-2)
    again = list(kerf.load(path).session(threads=2).run(feeds).values())
    for a, t in zip(actual, again):
        np.testing.assert_array_equal(a, t)


@pytest.mark.parametrize("activation", [QuantType.QUInt8, QuantType.QInt8])
def test_onnx_runtime_static_bert_runs_its_float_ops_as_byte_tables(tmp_path, activation):
    """ONNX Runtime's static file of a BERT-style encoder puts QuantizeLinear/DequantizeLinear
    around every op: the chains through GELU's Div, Erf and Add, the attention's Div and the bias
    and LayerNorm scale/shift vectors run as 256-entry tables (per channel for the vectors), and
    the outputs agree with ONNX Runtime on the same file."""
    model = transformer_models.bert_encoder(layers=1, hidden=64, heads=2, ffn=128, vocab=50, max_positions=16)
    calibration = [transformer_models.bert_feeds(2, 16, vocab=50, seed=k) for k in range(3)]
    path = static_quantized(model, tmp_path, "bert", calibration, activation, per_channel=False, prepare=False)
    feeds = transformer_models.bert_feeds(3, 16, vocab=50, seed=9)
    expected, actual, plan = run_both(path, feeds)
    for e, a in zip(expected, actual):
        assert np.abs(e - a).max() <= 2e-2 * np.abs(e).max(), np.abs(e - a).max()
    check_optimized(path, feeds, actual, relative=2e-2)
    assert "Erf" not in plan and count(plan, "kerf.QuantizedTable") >= 2, plan
    assert count(plan, "kerf.QuantizedChannelTable") >= 4, plan
    # Each table is what its operators give: the same session without optimizations, which runs
    # them one by one, agrees as closely as ONNX Runtime does.
    unfused = list(kerf.load(path).session(optimize=False).run(feeds).values())
    for e, u in zip(expected, unfused):
        assert np.abs(e - u).max() <= 2e-2 * np.abs(e).max(), np.abs(e - u).max()
