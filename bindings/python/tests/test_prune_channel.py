"""Channel pruning (kerf.prune(method="channel")) of real architectures, checked outside Kerf:
onnx.checker full_check, strict shape inference, ONNX Runtime outputs, parameter counts."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import kerf
from channel_models import mlp, parameter_count, resnet
from transformer_models import bert_encoder, bert_feeds, mobilenet_like


def bert_zeroed(hidden=256, ffn=1024, heads=4):
    """The BERT-style encoder with half the FFN units (GELU(0) = 0) and half the attention heads
    of every layer exactly zero (Q, K, V columns and biases, output-projection rows)."""
    m = bert_encoder(hidden=hidden, ffn=ffn, heads=heads)
    rng = np.random.default_rng(3)
    inits = {t.name: t for t in m.graph.initializer}
    order = [t.name for t in m.graph.initializer]
    square = [n for n in order if tuple(inits[n].dims) == (hidden, hidden)]
    size = hidden // heads

    def zero(name, axis, units):
        a = numpy_helper.to_array(inits[name]).copy()
        index = [slice(None)] * a.ndim
        index[axis] = units
        a[tuple(index)] = 0
        inits[name].CopyFrom(numpy_helper.from_array(a, name))

    # Per layer the builder creates Q, K, V, output projections in this order, each bias right
    # after its weight.
    for layer in range(len(square) // 4):
        q, k, v, o = square[4 * layer: 4 * layer + 4]
        units = np.concatenate([np.arange(h * size, (h + 1) * size) for h in rng.permutation(heads)[: heads // 2]])
        for w in (q, k, v):
            zero(w, 1, units)
            zero(order[order.index(w) + 1], 0, units)
        zero(o, 0, units)
    by_reader = {n.input[1]: n for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    for name, t in inits.items():
        if tuple(t.dims) == (hidden, ffn) and name in by_reader:
            gone = rng.permutation(ffn)[: ffn // 2]
            w = numpy_helper.to_array(t).copy()
            w[:, gone] = 0
            t.CopyFrom(numpy_helper.from_array(w, name))
            add = next(n for n in m.graph.node if n.op_type == "Add" and by_reader[name].output[0] in n.input)
            bias_name = next(i for i in add.input if i in inits)
            b = numpy_helper.to_array(inits[bias_name]).copy()
            b[gone] = 0
            inits[bias_name].CopyFrom(numpy_helper.from_array(b, bias_name))
    return m


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_valid(path):
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


MODELS = {
    "resnet_random": lambda: resnet(seed=0)[0],
    "resnet_zeroed": lambda: resnet(seed=0, zero_half=True)[0],
    "mlp_random": lambda: mlp(seed=1),
    "mlp_zeroed": lambda: mlp(seed=1, zero_half=True),
    "mobilenet_random": mobilenet_like,
    # With inferred value_info (heads included), so stale declarations would show.
    "bert_random": lambda: onnx.shape_inference.infer_shapes(bert_encoder(), data_prop=True),
    "bert_zeroed": lambda: onnx.shape_inference.infer_shapes(bert_zeroed(), data_prop=True),
}
# Fraction of parameters that must go at sparsity 0.5: half of every hidden width in the CNNs
# and the MLP; in the encoder the FFN units and attention heads (the residual width stays).
WANTED = {"resnet": 0.70, "mlp": 0.60, "mobilenet": 0.50, "bert": 0.35}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_channel_pruning_is_valid_onnx_and_smaller(tmp_path, name):
    original = MODELS[name]()
    onnx.checker.check_model(original, full_check=True)
    path, out = tmp_path / f"{name}.onnx", tmp_path / f"{name}.pruned.onnx"
    onnx.save(original, path)
    report = kerf.prune(path, out, method="channel", sparsity=0.5)
    pruned = check_valid(out)

    if name.startswith("bert"):
        feeds = bert_feeds(2, 16)
    else:
        dims = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim[1:]]
        feeds = {original.graph.input[0].name: np.random.default_rng(0).standard_normal([4] + dims).astype(np.float32)}
    expected = session(original).run(None, feeds)[0]
    got = session(pruned).run(None, feeds)[0]
    assert got.shape == expected.shape
    if name.endswith("zeroed"):
        # Only all-zero channels were removed: the outputs must not change.
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    with kerf.load(out) as model, model.session() as kerf_session:
        np.testing.assert_allclose(list(kerf_session.run(feeds).values())[0], got, rtol=1e-4, atol=1e-4)

    before, after = parameter_count(original), parameter_count(pruned)
    assert report.parameters_before == before and report.parameters_after == after
    assert 1 - after / before >= WANTED[name.split("_")[0]], report.skipped
    assert report.bytes_after < report.bytes_before
    for entry in report.tensors:
        assert entry.shape != entry.shape_before or entry.op_type not in ("Conv", "Gemm", "MatMul"), entry


def test_residual_ties_prune_every_member_alike(tmp_path):
    model, groups = resnet(seed=0)
    path, out = tmp_path / "resnet.onnx", tmp_path / "pruned.onnx"
    onnx.save(model, path)
    kerf.prune(path, out, method="channel", sparsity=0.5)
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    original = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for channels, members in groups:
        kept = []
        for conv, bn in members:
            # BN scales are distinct random values: they tell which channels stayed.
            scale0 = list(original[bn + ".scale"])
            kept.append([scale0.index(value) for value in weights[bn + ".scale"]])
            assert weights[conv + ".weight"].shape[0] == len(kept[-1])
        assert len(kept[0]) == channels - round(channels * 0.5)
        assert all(k == kept[0] for k in kept), f"members of one tied group kept different channels: {members}"
        assert kept[0] == sorted(kept[0])
    assert len(groups) >= 4 and any(len(members) > 2 for _, members in groups), "the model has real residual ties"


def test_concat_and_outputs_are_reported_as_skipped(tmp_path):
    from onnx import TensorProto, helper
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w2")
    w3 = numpy_helper.from_array(rng.standard_normal((4, 16, 1, 1)).astype(np.float32), "w3")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["c"], name="concat", axis=1),
        helper.make_node("Conv", ["c", "w3"], ["y"], name="conv_out"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w1, w2, w3])
    path = tmp_path / "concat.onnx"
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
    original = path.read_bytes()
    report = kerf.prune(path, method="channel", sparsity=0.5)
    reasons = " ".join(s.reason for s in report.skipped)
    assert "Concat" in reasons and "graph output" in reasons, report.skipped
    assert report.tensors == [] and report.parameters_after == report.parameters_before
    check_valid(path)
    assert onnx.load(str(path)).graph == onnx.load_from_string(original).graph


def test_flatten_of_a_spatial_map_without_value_info_prunes(tmp_path):
    """Conv (stride 2) -> Relu -> Flatten -> Gemm with a symbolic batch and no value_info: the
    size behind the Flatten is known only by Kerf's shape inference."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    gone = [1, 2, 5, 6]
    w[gone], b[gone] = 0, 0
    fc = rng.standard_normal((8 * 4 * 4, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
                              [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (fc, "fc")]])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "flatten.onnx"
    onnx.save(model, path)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    before = session(model).run(None, {"x": x})[0]
    report = kerf.prune(path, method="channel", sparsity=0.5)
    assert [s.name for s in report.skipped] == ["fc"], report.skipped
    pruned = onnx.load(str(path))
    check_valid(path)
    dims = {t.name: list(t.dims) for t in pruned.graph.initializer}
    assert dims["w"] == [4, 3, 3, 3] and dims["b"] == [4] and dims["fc"] == [4 * 4 * 4, 5]
    after = session(pruned).run(None, {"x": x})[0]
    assert after.shape == before.shape == (2, 5)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


def test_channel_multiple_keeps_multiples_in_every_larger_group(tmp_path):
    """channel_multiple=16: every Conv with more than 16 filters keeps a multiple of 16 (the
    nearest to 70%), smaller ones are pruned as without it; ONNX Runtime runs the file."""
    original = mobilenet_like()
    path, out, plain = tmp_path / "m.onnx", tmp_path / "m16.onnx", tmp_path / "m1.onnx"
    onnx.save(original, path)
    kerf.prune(path, plain, method="channel", sparsity=0.3)
    kerf.prune(path, out, method="channel", sparsity=0.3, channel_multiple=16)
    filters = {n.input[1]: None for n in original.graph.node if n.op_type == "Conv"}

    def counts(model):
        inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
        return {name: inits[name][0] for name in filters}

    before, rounded, unrounded = counts(original), counts(check_valid(out)), counts(onnx.load(str(plain)))
    assert before.keys() == rounded.keys() == unrounded.keys()
    assert any(c > 16 for c in before.values())
    for name, c in before.items():
        if c > 16 and rounded[name] != c:
            assert rounded[name] % 16 == 0 and abs(rounded[name] - 0.7 * c) <= 8, (name, c, rounded[name])
        elif c <= 16:
            assert rounded[name] == unrounded[name], (name, c)
    assert rounded != unrounded
    feeds = {original.graph.input[0].name: np.random.default_rng(0).standard_normal(
        [2] + [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim[1:]]).astype(np.float32)}
    with kerf.load(out) as model, model.session() as kerf_session:
        np.testing.assert_allclose(list(kerf_session.run(feeds).values())[0], session(onnx.load(str(out))).run(None, feeds)[0],
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(kerf.KerfError, match="channel multiple"):
        kerf.prune(path, tmp_path / "bad.onnx", method="channel", sparsity=0.3, channel_multiple=-2)
