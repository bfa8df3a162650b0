"""kerf.student on encoders exported by both torch exporters (TorchScript at opset 17, dynamo at
opset 18): every other layer removed computes what the torch module without those layers
computes; explicit indices; narrowing by channel pruning; distillation with intermediate
matching (hidden states through a projection, attention distributions) bringing the student
towards the teacher; and the refusals (the file untouched)."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import kerf

LENGTH = 16


class Layer(torch.nn.Module):
    """A post-LayerNorm encoder layer (BERT's): fused QKV projection, masked softmax attention, GELU feed-forward."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.norm1 = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 4 * width)
        self.down = torch.nn.Linear(4 * width, width)
        self.norm2 = torch.nn.LayerNorm(width)

    def forward(self, x, mask):
        b, n, w = x.shape
        q, k, v = self.qkv(x).split(w, dim=-1)
        split = lambda t: t.reshape(b, n, self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        scores = torch.softmax(q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5) + mask, dim=-1)
        attended = (scores @ v).transpose(1, 2).reshape(b, n, w)
        x = self.norm1(x + self.proj(attended))
        return self.norm2(x + self.down(torch.nn.functional.gelu(self.up(x))))


class Encoder(torch.nn.Module):
    """Token and position embeddings, LayerNorm, `layers` encoder layers in a ModuleList (named layers.N)."""

    def __init__(self, vocab=200, width=32, heads=4, layers=4):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Parameter(torch.randn(LENGTH, width) * 0.1)
        self.norm = torch.nn.LayerNorm(width)
        self.layers = torch.nn.ModuleList([Layer(width, heads) for _ in range(layers)])

    def forward(self, ids, attention_mask):
        mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        x = self.norm(self.tokens(ids) + self.positions[:ids.shape[1]])
        for layer in self.layers:
            x = layer(x, mask)
        return x


def inputs(batch, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 200, (batch, LENGTH)).astype(np.int64)
    mask = np.ones((batch, LENGTH), np.int64)
    mask[::2, LENGTH * 3 // 4:] = 0
    return {"ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def teacher(request, tmp_path_factory):
    """(torch module, exported file) for each exporter."""
    torch.manual_seed(0)
    module = Encoder().eval()
    path = tmp_path_factory.mktemp(request.param) / "teacher.onnx"
    example = tuple(torch.from_numpy(a) for a in inputs(2, 0).values())
    if request.param == "torchscript":
        torch.onnx.export(module, example, str(path), input_names=["ids", "attention_mask"], output_names=["hidden"], opset_version=17,
                          dynamo=False, dynamic_axes={"ids": {0: "batch"}, "attention_mask": {0: "batch"}, "hidden": {0: "batch"}})
    else:
        batch = torch.export.Dim("batch", min=1, max=64)
        torch.onnx.export(module, example, str(path), input_names=["ids", "attention_mask"], output_names=["hidden"], dynamo=True,
                          dynamic_shapes=({0: batch}, {0: batch}))
    return module, path


def run(path, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def without_layers(module, dropped):
    kept = copy.deepcopy(module)
    kept.layers = torch.nn.ModuleList([layer for i, layer in enumerate(kept.layers) if i not in dropped])
    return kept


def test_every_other_layer_removed_computes_the_module_without_them(teacher, tmp_path):
    module, path = teacher
    out = tmp_path / "student.onnx"
    report = kerf.student(path, out)
    assert [layer["index"] for layer in report.layers] == [0, 1, 2, 3]
    assert [layer["dropped"] for layer in report.layers] == [False, True, False, True]
    # A layer's own weights: all but its fresh LayerNorm scales and biases (ones and zeros, which
    # both exporters store once for every LayerNorm of the model).
    own = sum(p.numel() for name, p in module.layers[0].named_parameters() if "norm" not in name)
    assert [layer["parameters"] for layer in report.layers] == [own] * 4
    assert report.parameters_before - report.parameters_after == 2 * own
    onnx.checker.check_model(str(out), full_check=True)
    feeds = inputs(5, 1)
    want = without_layers(module, {1, 3})(*(torch.from_numpy(a) for a in feeds.values())).detach().numpy()
    got = run(out, feeds)
    assert got.shape == want.shape == (5, LENGTH, 32)
    np.testing.assert_allclose(got, want, atol=2e-5)
    with kerf.load(out) as model, model.session() as session:
        np.testing.assert_allclose(session.run(feeds)["hidden"], want, atol=2e-5)


def test_explicit_indices_and_the_last_layer(teacher, tmp_path):
    module, path = teacher
    out = tmp_path / "student.onnx"
    report = kerf.student(path, out, drop_layers=[2, 3])
    assert [layer["dropped"] for layer in report.layers] == [False, False, True, True]
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["hidden"]
    feeds = inputs(3, 2)
    want = without_layers(module, {2, 3})(*(torch.from_numpy(a) for a in feeds.values())).detach().numpy()
    np.testing.assert_allclose(run(out, feeds), want, atol=2e-5)


def test_narrowing_halves_the_feed_forward_channels(teacher, tmp_path):
    _, path = teacher
    out = tmp_path / "narrow.onnx"
    report = kerf.student(path, out, drop_layers=None, narrow=0.5)
    assert not any(layer["dropped"] for layer in report.layers)
    up = [t for t in report.narrowed["tensors"] if t["shape_before"] == [32, 128]]
    assert len(up) == 4 and all(t["shape"] == [32, 64] for t in up)
    assert report.parameters_after < report.parameters_before * 0.8
    assert run(out, inputs(2, 3)).shape == (2, LENGTH, 32)


def test_distilling_the_student_with_matches_moves_it_towards_the_teacher(teacher, tmp_path):
    _, path = teacher
    student = tmp_path / "student.onnx"
    kerf.student(path, student)
    hidden = {n.input[0] for n in onnx.load(str(student)).graph.node if n.op_type == "Softmax"}
    assert len(hidden) == 2  # the two kept layers' attention scores
    data, held_out = inputs(96, 4), inputs(32, 5)

    def cosine(a, b):
        return float(np.mean(np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))

    before = cosine(run(student, held_out), run(path, held_out))
    teacher_softmax = [n.output[0] for n in onnx.load(str(path)).graph.node if n.op_type == "Softmax"]
    student_softmax = [n.output[0] for n in onnx.load(str(student)).graph.node if n.op_type == "Softmax"]
    report = kerf.distill(path, student, data=data, output_loss="cosine", epochs=8, batch_size=16,
                          optimizer=kerf.optim.AdamW(lr=2e-3), threads=1,
                          matches=[(student_softmax[-1], teacher_softmax[-1], "attention", 0.5)])
    assert report.steps == 48
    after = cosine(run(student, held_out), run(path, held_out))
    assert after > before and after > 0.9, (before, after)


def test_refusals_leave_the_file_untouched(teacher, tmp_path):
    _, path = teacher
    original = path.read_bytes()
    for kwargs, needle in [(dict(drop_layers=[7]), "no layer 7"), (dict(drop_layers=[0, 1, 2, 3]), "every layer"),
                           (dict(drop_layers="most"), "drop_layers"), (dict(narrow=1.5), "narrow")]:
        with pytest.raises(kerf.KerfError, match=needle):
            kerf.student(path, **kwargs)
        assert path.read_bytes() == original
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), plain)
    with pytest.raises(kerf.KerfError, match="no repeated layers") as error:
        kerf.student(plain, tmp_path / "out.onnx")
    assert error.value.status == kerf.Status.UNSUPPORTED


class HeadsLayer(torch.nn.Module):
    """Attention with separate Q, K, V and output projections (the pattern channel pruning removes heads from)."""

    def __init__(self, width=32, heads=4):
        super().__init__()
        self.heads, self.d, self.width = heads, width // heads, width
        self.q, self.k, self.v, self.o = (torch.nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        b, n, _ = x.shape
        split = lambda t: t.reshape(b, n, self.heads, self.d).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.softmax(q @ k.transpose(-1, -2) / self.d ** 0.5, dim=-1)
        return x + self.o((scores @ v).transpose(1, 2).reshape(b, n, self.width))


class HeadsNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([HeadsLayer(), HeadsLayer()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.mark.parametrize("via", ["student", "prune"])
@pytest.mark.parametrize("dynamo", [False, True])
def test_narrowing_removes_attention_heads_from_both_exporters(tmp_path, dynamo, via):
    """TorchScript writes head counts as Constant nodes and dynamo shares one Reshape target
    across layers: kerf.student(narrow=0.5) and kerf.prune(method="channel") still remove half the
    heads of each layer, and the result computes what the module with those heads' outputs cut
    off computes."""
    torch.manual_seed(1)
    module, x = HeadsNet().eval(), torch.randn(3, 8, 32)
    path = tmp_path / "heads.onnx"
    if dynamo:
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    else:
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False,
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    out = tmp_path / "student.onnx"
    if via == "student":
        report = kerf.student(path, out, drop_layers=None, narrow=0.5)
        pruned = report.narrowed
    else:
        report = pruned = kerf.prune(path, out, method="channel", sparsity=0.5)
    assert report.parameters_after < report.parameters_before * 0.55
    narrowed = {t["name"]: numpy_from(out, t["name"]) for t in pruned["tensors"] if t["shape"] == [16, 32]}
    assert len(narrowed) == 2  # each layer's output projection, [heads·d kept, width]
    expected = copy.deepcopy(module)
    for layer in expected.layers:
        rows = layer.o.weight.detach().numpy().T  # MatMul's B: [input channels, width]
        match = next(b for b in narrowed.values() if any(np.array_equal(b[0], r) for r in rows))
        kept = [j for j in range(32) if any(np.array_equal(rows[j], r) for r in match)]
        assert len(kept) == 16 and all(len({j // 8 for j in kept[h * 8:(h + 1) * 8]}) == 1 for h in range(2)), kept
        with torch.no_grad():
            layer.o.weight[:, [j for j in range(32) if j not in kept]] = 0
    want = expected(x).detach().numpy()
    np.testing.assert_allclose(run(out, {"x": x.numpy()}), want, atol=2e-5)
    if via == "prune":
        return
    # Its attention maps have half the heads: matching them to the teacher's one to one is refused.
    softmax = [[n.output[0] for n in onnx.load(str(p)).graph.node if n.op_type == "Softmax"][0] for p in (out, path)]
    with pytest.raises(kerf.KerfError, match="maps of one shape"):
        kerf.distill(path, out, data={"x": x.numpy()}, matches=[(softmax[0], softmax[1], "attention")], output_loss="mse")


def numpy_from(path, name):
    return next(onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer if t.name == name)
