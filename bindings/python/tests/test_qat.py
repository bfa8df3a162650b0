"""Quantization-aware training (kerf.train/kerf.distill with qat=) against a PyTorch
reimplementation of its rules: the same MLP, batches and optimizer give the same per-epoch losses,
the written int8 weights are PyTorch's fake-quantized trained weights and the written activation
ranges are PyTorch's EMA ranges; the int8 file runs in ONNX Runtime as PyTorch's fake-quantized
model in eval mode. Also the dynamic form, frozen ranges (qat_momentum=1), a pruned student
distilled with QAT, and bad arguments (a KerfError, the source file untouched).

The reference (see QATReference): targets are the MatMul/Gemm weights, fake-quantized symmetric
int8 per output channel (max|W_c| / 127, round half to even, straight-through gradient) from the
current weights in every step; static activations are the MatMuls' data inputs (x, and the Relu
output the first MatMul's Add and Relu run fused into), uint8 with the range [low, high] widened to
contain 0, first calibrated by min/max over the training inputs in float, then in each training
step moved to m·range + (1 − m)·batch range before quantizing with it (gradient: dY where the
quantized value lies in [0, 255]); evaluation uses the range without moving it. keep_sparsity (the
default) keeps the weights' exact zeros at zero. Biases train in float; the written file stores a
Gemm's bias as int32 on the grid input scale · weight scale (as kerf.quantize does), which the
reference's evaluation applies too."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import kerf
from torch_training import relative_gap

F = torch.nn.functional
ONE = np.float32(1)


# ---------------------------------------------------------------------------------------------
# Models and data


def mlp_file(path, form="matmul", sizes=(8, 16, 4), seed=0, softmax=False):
    """x -> MatMul(w0) -> Add(b0) -> Relu -> MatMul(w1) -> Add(b1) = logits (form "matmul", weights
    [K, N]) or x -> Gemm(w0, b0, transB=1) -> Relu -> Gemm(w1, b1, transB=1) (form "gemm", weights
    [N, K]); with softmax a second output "probabilities". Returns (path, {name: initial array})."""
    rng = np.random.default_rng(seed)
    nodes, weights, value = [], {}, "x"
    layers = len(sizes) - 1
    for i in range(layers):
        k, n = sizes[i], sizes[i + 1]
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        w[rng.random(w.shape) < 0.05] = 0  # a few exact zeros
        weights[f"w{i}"] = w if form == "matmul" else np.ascontiguousarray(w.T)
        weights[f"b{i}"] = (rng.standard_normal(n) * 0.1).astype(np.float32)
        out = "logits" if i == layers - 1 else f"a{i}"
        if form == "matmul":
            nodes += [helper.make_node("MatMul", [value, f"w{i}"], [f"mm{i}"]),
                      helper.make_node("Add", [f"mm{i}", f"b{i}"], [out])]
        else:
            nodes.append(helper.make_node("Gemm", [value, f"w{i}", f"b{i}"], [out], transB=1))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"]))
            value = f"h{i}"
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", sizes[-1]])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", sizes[-1]]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", sizes[0]])], outputs,
                              [numpy_helper.from_array(a, name) for name, a in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path), weights


def initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def op_types(path):
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node)


def run_ort(path, x, output="logits"):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run([output], {"x": x})[0]


def dequantized(arrays, name, axis):
    """The int8 weight `name` of a QDQ file times its per-channel scales, and its int8 values."""
    q, scale, zero = arrays[f"{name}_quantized"], arrays[f"{name}_scale"], arrays[f"{name}_zero_point"]
    assert q.dtype == np.int8 and zero.dtype == np.int8 and not zero.any()
    assert scale.shape == (q.shape[axis],)
    shape = [1, 1]
    shape[axis] = -1
    return q.astype(np.float32) * scale.reshape(shape), q


# ---------------------------------------------------------------------------------------------
# The PyTorch reference


class _FakeQuantize(torch.autograd.Function):
    """(clamp(round(x / scale) + zp, qmin, qmax) − zp)·scale in float32 (x / scale, as Kerf and
    ONNX QuantizeLinear divide); backward: dY where round(x / scale) + zp lies in [qmin, qmax]."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (q.clamp(qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, dy):
        (inside,) = ctx.saved_tensors
        return dy * inside, None, None, None, None


class _FakeQuantizeWeight(torch.autograd.Function):
    """Symmetric int8 per channel along `axis`: scale_c = max|W_c| / 127 (1 when all zero),
    clamp(round(W / scale_c), −127, 127)·scale_c; the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, w, axis):
        return fake_quantize_weight(w, axis)[0]

    @staticmethod
    def backward(ctx, dy):
        return dy, None


def fake_quantize_weight(w, axis):
    """(fake-quantized w, its int8 values, its scales)."""
    w = w.detach()
    reduce = 1 - axis
    absmax = w.abs().amax(dim=reduce)
    scale = torch.where(absmax > 0, absmax / 127, torch.ones_like(absmax))
    shape = [1, 1]
    shape[axis] = -1
    scale = scale.reshape(shape)
    q = torch.round(w / scale).clamp(-127, 127)
    return q * scale, q, scale.flatten()


def affine(low, high, qmin=0, qmax=255):
    """(scale, zero point) of [low, high] widened to contain 0, in float32 as Kerf computes them."""
    lo, hi = min(np.float32(low), np.float32(0)), max(np.float32(high), np.float32(0))
    if not hi > lo:
        return np.float32(1), 0
    scale = np.float32(hi - lo) / np.float32(qmax - qmin)
    zero_point = np.round(np.float32(qmin) - lo / scale)
    return np.float32(scale), int(min(max(zero_point, qmin), qmax))


class QATReference:
    """Kerf's QAT of mlp_file's two-layer model in PyTorch (float32). mode "static": fake-quantized
    x and h0 with EMA ranges; "dynamic": x and h0 fake-quantized with their own min and max."""

    def __init__(self, weights, form, mode="static", momentum=0.99):
        self.form, self.mode = form, mode
        self.axis = 1 if form == "matmul" else 0  # the output-channel axis
        self.momentum = np.float32(momentum)
        self.parameters = {name: torch.tensor(a, requires_grad=True) for name, a in weights.items()}
        # keep_sparsity (the default): the weights' exact zeros stay zero.
        self.zeros = {name: torch.from_numpy(a == 0) for name, a in weights.items() if name.startswith("w")}
        self.ranges = {}

    def linear(self, x, i, quantize=True, input_scale=None):
        """x·W + b. With input_scale (evaluation as the written file computes), a Gemm's bias is
        rounded to the int32 grid of input_scale · the weight's channel scales (training leaves it
        float)."""
        w, b = self.parameters[f"w{i}"], self.parameters[f"b{i}"]
        if quantize:
            w = _FakeQuantizeWeight.apply(w, self.axis)
        if input_scale is not None and self.form == "gemm":
            scale = torch.tensor(input_scale) * fake_quantize_weight(self.parameters[f"w{i}"], self.axis)[2]
            b = torch.round(b / scale) * scale
        return (x @ w if self.form == "matmul" else x @ w.T) + b

    def calibrate(self, x):
        """Min/max of x and h0 over all of x, the model in float."""
        with torch.no_grad():
            x = torch.from_numpy(x)
            h = torch.relu(self.linear(x, 0, quantize=False))
        self.ranges = {name: (np.float32(v.min()), np.float32(v.max())) for name, v in (("x", x), ("h0", h))}

    def quantize_activation(self, name, v, training):
        if self.mode == "dynamic":
            low, high = np.float32(v.detach().min()), np.float32(v.detach().max())
        else:
            low, high = self.ranges[name]
            if training:
                m = self.momentum
                low = m * low + (ONE - m) * np.float32(v.detach().min())
                high = m * high + (ONE - m) * np.float32(v.detach().max())
                self.ranges[name] = (np.float32(low), np.float32(high))
        scale, zero_point = affine(low, high)
        return _FakeQuantize.apply(v, torch.tensor(scale), float(zero_point), 0.0, 255.0), scale

    def forward(self, x, training):
        exported = not training and self.mode == "static"
        x, scale = self.quantize_activation("x", x, training)
        h = torch.relu(self.linear(x, 0, input_scale=scale if exported else None))
        h, scale = self.quantize_activation("h0", h, training)
        return self.linear(h, 1, input_scale=scale if exported else None)

    def train(self, batches, loss_function, epochs, lr, momentum):
        """Per-epoch mean losses of SGD(lr, momentum) over `batches` ((x, target) arrays) in order."""
        optimizer = torch.optim.SGD(self.parameters.values(), lr=lr, momentum=momentum)
        losses = []
        for _ in range(epochs):
            epoch = []
            for x, target in batches:
                optimizer.zero_grad()
                loss = loss_function(self.forward(torch.from_numpy(x), training=True), torch.from_numpy(target))
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for name, zeros in self.zeros.items():
                        self.parameters[name][zeros] = 0
                epoch.append(loss.item())
            losses.append(float(np.mean(epoch)))
        return losses

    def evaluate(self, x):
        with torch.no_grad():
            return self.forward(torch.from_numpy(x), training=False).numpy()


def test_reference_fake_quantization_is_pytorchs():
    """The reference's fake quantization is PyTorch's fake_quantize_per_tensor_affine /
    fake_quantize_per_channel_affine, forward and backward, except at exact ties (PyTorch rounds
    x·(1/scale), the reference and Kerf x / scale): at most one step on a few elements."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(4096, generator=generator) * 2).requires_grad_()
    scale, zero_point = affine(-3.0, 2.5)
    ours = _FakeQuantize.apply(x, torch.tensor(scale), float(zero_point), 0.0, 255.0)
    theirs = torch.fake_quantize_per_tensor_affine(x, float(scale), zero_point, 0, 255)
    steps = ((ours - theirs).abs() / scale).detach()
    assert steps.max() <= 1.001 and (steps > 0.5).sum() <= 4
    same = steps < 0.5
    (ours_grad,) = torch.autograd.grad(ours.sum(), x)
    (theirs_grad,) = torch.autograd.grad(theirs.sum(), x)
    assert torch.equal(ours_grad[same], theirs_grad[same]) and 0 < (theirs_grad == 0).sum() < 4096  # some clipped
    w = torch.randn(16, 8, generator=generator)
    w[3] = 0  # an all-zero channel: scale 1
    for axis in (0, 1):
        fake, _, scales = fake_quantize_weight(w, axis)
        theirs = torch.fake_quantize_per_channel_affine(w, scales, torch.zeros(w.shape[axis], dtype=torch.int32), axis, -127, 127)
        shape = [1, 1]
        shape[axis] = -1
        assert ((fake - theirs).abs() / scales.reshape(shape)).max() <= 1.001
        assert (fake != theirs).sum() <= 2 and (fake[3] == 0).all()


# ---------------------------------------------------------------------------------------------
# 1, 2: static QAT trained by Kerf and by the reference

SAMPLES, BATCH, EPOCHS, LR = 96, 16, 4, 0.05
CASES = {
    "matmul-mse": dict(form="matmul", loss=kerf.loss.MSE(output="logits", target="t"), torch_loss=F.mse_loss, labels="float",
                       momentum=0.99),
    # momentum 0.9: the ranges shrink fast towards the batches' and clip more (the gradient's mask)
    "gemm-crossentropy-softmax": dict(form="gemm", loss=kerf.loss.CrossEntropy(output="logits", labels="t"),
                                      torch_loss=F.cross_entropy, labels="int", momentum=0.9),
}


def training_data(labels, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, 8)).astype(np.float32)
    if labels == "float":
        return x, rng.standard_normal((SAMPLES, 4)).astype(np.float32)
    return x, rng.integers(0, 4, SAMPLES).astype(np.int64)


@pytest.fixture(scope="module", params=list(CASES))
def static_run(request, tmp_path_factory):
    """Kerf's and the reference's static QAT of one case: a dict of both sides."""
    case = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    path, weights = mlp_file(folder / "mlp.onnx", case["form"], softmax=case["form"] == "gemm")
    x, t = training_data(case["labels"])
    out = folder / "qat.onnx"
    original = open(path, "rb").read()
    report = kerf.train(path, out, data={"x": x, "t": t}, loss=case["loss"], optimizer=kerf.optim.SGD(lr=LR, momentum=0.9),
                        epochs=EPOCHS, batch_size=BATCH, shuffle=False, threads=1, qat=True, qat_momentum=case["momentum"])
    assert open(path, "rb").read() == original

    reference = QATReference(weights, case["form"], momentum=case["momentum"])
    reference.calibrate(x)
    calibrated = dict(reference.ranges)
    batches = [(x[i:i + BATCH], t[i:i + BATCH]) for i in range(0, SAMPLES, BATCH)]
    losses = reference.train(batches, case["torch_loss"], EPOCHS, LR, 0.9)
    return dict(case=request.param, form=case["form"], path=path, out=out, report=report, reference=reference, losses=losses,
                calibrated=calibrated)


def test_static_qat_trains_as_pytorch(static_run):
    report, reference = static_run["report"], static_run["reference"]
    assert len(report.epochs) == EPOCHS and report.steps == EPOCHS * SAMPLES // BATCH
    kerf_losses = [epoch["loss"] for epoch in report.epochs]
    gap = relative_gap(kerf_losses, static_run["losses"])
    print(f"\n{static_run['case']}: losses kerf {kerf_losses} torch {static_run['losses']} relative gap {gap:.2e}")
    assert gap < 1e-4  # measured 1.7e-8 (matmul-mse) and 4.6e-8 (gemm-crossentropy-softmax)
    assert kerf_losses[-1] < kerf_losses[0]

    quantization = report.quantization
    assert isinstance(quantization, kerf.QuantizeReport) and quantization["mode"] == "static"
    op = {"matmul": "MatMul", "gemm": "Gemm"}[static_run["form"]]
    assert [(n["op_type"], n["weight"]) for n in quantization["nodes"]] == [(op, "w0"), (op, "w1")]
    activations = {a["name"]: a for a in quantization["activations"]}
    assert sorted(activations) == ["h0", "x"]
    worst = 0.0
    for name, (low, high) in reference.ranges.items():
        a = activations[name]
        assert (a["low"], a["high"]) == (a["min"], a["max"])
        for got, want in ((a["low"], low), (a["high"], high)):
            gap = abs(got - want) / max(abs(want), 1e-6) if want != 0 else abs(got)
            worst = max(worst, gap)
            assert gap < 1e-5, (name, got, want)  # measured 0 (bit-equal)
        scale, zero_point = affine(a["low"], a["high"])
        assert a["scale"] == pytest.approx(scale, rel=1e-6) and a["zero_point"] == zero_point
        # The ranges did move away from their calibrated values (else this would test nothing).
        assert high != static_run["calibrated"][name][1]
        assert low != static_run["calibrated"][name][0] if name == "x" else low == 0  # h0 is a Relu's output
    print(f"{static_run['case']}: ranges' worst relative gap {worst:.2e}")

    # The file holds the fake-quantized trained weights: int8 values and per-channel scales.
    arrays = initializers(static_run["out"])
    axis = reference.axis
    for i in range(2):
        values, q = dequantized(arrays, f"w{i}", axis)
        want, want_q, want_scale = (t.numpy() for t in fake_quantize_weight(reference.parameters[f"w{i}"], axis))
        assert values.shape == want.shape and q.shape == want_q.shape
        np.testing.assert_allclose(arrays[f"w{i}_scale"], want_scale, rtol=1e-5, atol=0)
        steps = np.abs(q.astype(np.int32) - want_q.astype(np.int32))
        print(f"{static_run['case']}: w{i} int8 off by one step at {int((steps > 0).sum())} of {q.size}, "
              f"dequantized max diff {np.abs(values - want).max():.2e}, "
              f"scale max relative gap {np.max(np.abs(arrays[f'w{i}_scale'] - want_scale) / want_scale):.2e}")
        assert steps.max() <= 1 and (steps > 0).mean() <= 0.02  # measured 0 differing elements, scales bit-equal
        # Within one step of the channel's scale, and mostly exactly equal.
        np.testing.assert_allclose(values, want, rtol=0, atol=float(want_scale.max()) * 1.001)
        # The weights' exact zeros (kept by keep_sparsity) are int8 zeros.
        assert not q[reference.zeros[f"w{i}"].numpy()].any()
        bias = reference.parameters[f"b{i}"].detach().numpy()
        if static_run["form"] == "matmul":  # MatMul + Add: the bias stays float
            assert arrays[f"b{i}"].dtype == np.float32
            gap = np.abs(arrays[f"b{i}"] - bias).max()
            assert gap < 1e-5  # measured 1.5e-8
        else:  # Gemm: int32 with the scale input scale · weight scale, as kerf.quantize writes it
            assert arrays[f"b{i}_quantized"].dtype == np.int32 and not arrays[f"b{i}_zero_point"].any()
            scale = arrays[f"b{i}_scale"]
            input_scale = arrays["x_scale" if i == 0 else "h0_scale"]
            np.testing.assert_allclose(scale, input_scale * arrays[f"w{i}_scale"], rtol=1e-6)
            gap = np.abs(arrays[f"b{i}_quantized"] * scale - bias).max()
            assert gap <= 0.5001 * scale.max()  # rounded to its grid: measured 8.7e-5 (half a step 1e-4)
        print(f"{static_run['case']}: b{i} max diff {gap:.2e}")


def test_static_qat_file_runs_in_onnx_runtime_as_pytorch_fake_quantized(static_run):
    out, reference = static_run["out"], static_run["reference"]
    plain = out.parent / "static.onnx"  # the file has kerf.quantize's static layout: the same op types
    kerf.quantize(static_run["path"], plain, mode="static", calibration={"x": training_data("float")[0]})
    assert op_types(out) == op_types(plain)
    assert op_types(out).count("QuantizeLinear") == 2
    onnx.checker.check_model(str(out), full_check=True)
    fresh = np.random.default_rng(7).standard_normal((64, 8)).astype(np.float32) * 1.2
    low, high = reference.ranges["x"]
    assert (fresh < low).any() and (fresh > high).any()  # some outside x's range: clipped
    got = run_ort(out, fresh)
    want = reference.evaluate(fresh)
    assert got.shape == want.shape == (64, 4)
    difference = float(np.abs(got - want).max())
    spread = float(want.max() - want.min())
    print(f"\n{static_run['case']}: onnxruntime against torch eval max abs diff {difference:.2e} (output range {spread:.2f})")
    assert difference < 1e-3 * spread  # measured 0 (both cases)
    if static_run["form"] == "gemm":
        probabilities = run_ort(out, fresh, "probabilities")
        np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(want), 1).numpy(), rtol=0, atol=1e-5)
    # Kerf's own runtime runs it the same.
    with kerf.load(out) as model, model.session() as session:
        ours = session.run({"x": fresh})["logits"]
    assert float(np.abs(ours - got).max()) < 1e-3 * spread


# ---------------------------------------------------------------------------------------------
# 3: dynamic QAT


def test_dynamic_qat_writes_kerf_quantize_dynamic_form_and_trains_as_pytorch(tmp_path):
    path, weights = mlp_file(tmp_path / "mlp.onnx", "matmul")
    x, t = training_data("float")
    report = kerf.train(path, tmp_path / "qat.onnx", data={"x": x, "t": t}, loss=kerf.loss.MSE(output="logits", target="t"),
                        optimizer=kerf.optim.SGD(lr=LR, momentum=0.9), epochs=2, batch_size=BATCH, shuffle=False, threads=1,
                        qat="dynamic")
    kerf.quantize(path, tmp_path / "dynamic.onnx", mode="dynamic")
    types = op_types(tmp_path / "qat.onnx")
    assert types == op_types(tmp_path / "dynamic.onnx")
    assert types.count("DynamicQuantizeLinear") == 2 and types.count("MatMulInteger") == 2
    assert "QuantizeLinear" not in types
    assert report.quantization["mode"] == "dynamic" and report.quantization["activations"] == []

    reference = QATReference(weights, "matmul", mode="dynamic")
    batches = [(x[i:i + BATCH], t[i:i + BATCH]) for i in range(0, SAMPLES, BATCH)]
    losses = reference.train(batches, F.mse_loss, 2, LR, 0.9)
    gap = relative_gap([e["loss"] for e in report.epochs], losses)
    print(f"\ndynamic: losses relative gap {gap:.2e}")
    assert gap < 1e-4  # measured 3.5e-8
    arrays = initializers(tmp_path / "qat.onnx")
    int8 = {name: a for name, a in arrays.items() if a.dtype == np.int8 and a.ndim == 2}
    assert len(int8) == 2

    fresh = np.random.default_rng(8).standard_normal((32, 8)).astype(np.float32)
    want = reference.evaluate(fresh)
    # The file's exact meaning, as Kerf's runtime computes it. ONNX Runtime runs the file too, but
    # its MatMulInteger on AVX2-only CPUs adds u8·s8 pairs in saturating int16 (vpmaddubsw), so its
    # values depend on the CPU: only its shape is checked.
    with kerf.load(tmp_path / "qat.onnx") as model, model.session() as session:
        got = session.run({"x": fresh})["logits"]
    difference, spread = float(np.abs(got - want).max()), float(want.max() - want.min())
    print(f"dynamic: Kerf against torch max abs diff {difference:.2e} (output range {spread:.2f})")
    assert got.shape == want.shape == (32, 4) and difference < 1e-3 * spread  # measured 2.4e-7
    assert run_ort(tmp_path / "qat.onnx", fresh).shape == (32, 4)


# ---------------------------------------------------------------------------------------------
# 4: frozen ranges


def test_momentum_one_keeps_the_calibrated_ranges(tmp_path):
    path, weights = mlp_file(tmp_path / "mlp.onnx", "matmul", seed=3)
    x, t = training_data("float", seed=4)
    report = kerf.train(path, tmp_path / "qat.onnx", data={"x": x, "t": t}, loss=kerf.loss.MSE(output="logits", target="t"),
                        optimizer=kerf.optim.SGD(lr=LR, momentum=0.9), epochs=2, batch_size=BATCH, shuffle=False, threads=1,
                        qat=True, qat_momentum=1)
    # The float model's min and max over the data, from ONNX Runtime on the source file.
    hidden = onnx.load(path)
    hidden.graph.output.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["n", 16]))
    onnx.save(hidden, str(tmp_path / "with_hidden.onnx"))
    h = run_ort(tmp_path / "with_hidden.onnx", x, "h0")
    expected = {"x": (x.min(), x.max()), "h0": (h.min(), h.max())}
    activations = {a["name"]: a for a in report.quantization["activations"]}
    assert sorted(activations) == sorted(expected)
    for name, (low, high) in expected.items():
        assert activations[name]["low"] == pytest.approx(float(low), rel=1e-6, abs=1e-7)
        assert activations[name]["high"] == pytest.approx(float(high), rel=1e-6, abs=1e-7)
    # The file's QuantizeLinear parameters are those of the calibrated ranges.
    arrays = initializers(tmp_path / "qat.onnx")
    for name, (low, high) in expected.items():
        scale, zero_point = affine(low, high)
        assert float(arrays[f"{name}_scale"]) == pytest.approx(float(scale), rel=1e-6)
        assert int(arrays[f"{name}_zero_point"]) == zero_point
    # ...while the weights did train.
    values, _ = dequantized(arrays, "w0", 1)
    assert np.abs(values - weights["w0"]).max() > 10 * arrays["w0_scale"].max()


# ---------------------------------------------------------------------------------------------
# 5: a pruned student distilled with QAT


def test_distill_with_qat_keeps_the_pruned_zeros_and_learns_the_teacher(tmp_path):
    teacher, weights = mlp_file(tmp_path / "teacher.onnx", "matmul", sizes=(8, 32, 4), seed=5)
    student = onnx.load(teacher)
    pruned = {}
    for tensor in student.graph.initializer:
        if tensor.name.startswith("w"):
            w = numpy_helper.to_array(tensor).copy()
            cut = np.sort(np.abs(w).ravel())[w.size // 2 - 1]
            w[np.abs(w) <= cut] = 0  # the smaller half: exactly 50% (no ties among random floats)
            assert (w == 0).sum() == w.size // 2
            pruned[tensor.name] = w == 0
            tensor.CopyFrom(numpy_helper.from_array(w, tensor.name))
    onnx.save(student, str(tmp_path / "pruned.onnx"))
    rng = np.random.default_rng(6)
    x, held_out = rng.standard_normal((256, 8)).astype(np.float32), rng.standard_normal((128, 8)).astype(np.float32)
    report = kerf.distill(teacher, tmp_path / "pruned.onnx", tmp_path / "distilled.onnx", data={"x": x}, output_loss="mse",
                          optimizer=kerf.optim.Adam(lr=1e-2), epochs=15, batch_size=32, threads=1, teacher_threads=1, qat=True)
    assert report.quantization["mode"] == "static" and len(report.quantization["nodes"]) == 2
    assert report.epochs[-1]["loss"] < report.epochs[0]["loss"]

    arrays = initializers(tmp_path / "distilled.onnx")
    for name, mask in pruned.items():
        _, q = dequantized(arrays, name, 1)
        assert q.shape == mask.shape
        assert not q[mask].any()  # every pruned weight is an int8 0
        extra = int((q[~mask] == 0).sum())  # kept weights that happen to round to 0
        print(f"\n{name}: {int(mask.sum())} pruned zeros kept; {extra} kept weights round to 0")
        assert extra <= 0.02 * mask.size
    assert [e["sparsity"] for e in report.sparsity] == [0.5, 0.5]

    target = run_ort(teacher, held_out)
    before = float(np.mean((run_ort(tmp_path / "pruned.onnx", held_out) - target) ** 2))
    after = float(np.mean((run_ort(tmp_path / "distilled.onnx", held_out) - target) ** 2))
    print(f"mean squared error against the teacher: pruned {before:.4f}, distilled int8 {after:.4f}")
    assert after < 0.5 * before  # measured 0.0483 -> 0.0148


# ---------------------------------------------------------------------------------------------
# 6: arguments


def test_batches_from_a_callable_with_calibration_give_the_array_run(tmp_path):
    path, _ = mlp_file(tmp_path / "mlp.onnx", "matmul")
    x, t = training_data("float")
    common = dict(loss=kerf.loss.MSE(output="logits", target="t"), optimizer=kerf.optim.SGD(lr=LR, momentum=0.9), epochs=2,
                  batch_size=BATCH, shuffle=False, threads=1, qat=True)
    arrays = kerf.train(path, tmp_path / "arrays.onnx", data={"x": x, "t": t}, **common)
    batches = lambda epoch: ({"x": x[i:i + BATCH], "t": t[i:i + BATCH]} for i in range(0, SAMPLES, BATCH))
    called = kerf.train(path, tmp_path / "called.onnx", data=batches, calibration={"x": x}, **common)
    assert [e["loss"] for e in called.epochs] == [e["loss"] for e in arrays.epochs]
    assert called.quantization["activations"] == arrays.quantization["activations"]
    assert open(tmp_path / "called.onnx", "rb").read() == open(tmp_path / "arrays.onnx", "rb").read()


def test_bad_qat_arguments_are_clear_errors_and_leave_the_source(tmp_path):
    path, _ = mlp_file(tmp_path / "mlp.onnx", "matmul")
    teacher, _ = mlp_file(tmp_path / "teacher.onnx", "matmul", seed=9)
    original = open(path, "rb").read()
    x, t = training_data("float")
    loss = kerf.loss.MSE(output="logits", target="t")
    arrays = {"x": x, "t": t}
    batches = lambda epoch: ({"x": x[i:i + BATCH], "t": t[i:i + BATCH]} for i in range(0, SAMPLES, BATCH))
    cases = [
        (dict(data=arrays, qat="bogus"), "mode"),
        (dict(data=arrays, qat=3), "qat must be"),
        (dict(data=arrays, calibration={"x": x}), "calibration"),
        (dict(data=arrays, qat=False, calibration={"x": x}), "calibration"),
        (dict(data=arrays, qat={"mode": "static", "auto_tolerance": 0.1}), "auto_tolerance"),
        (dict(data=arrays, qat={"bogus": 1}), "bogus"),
        (dict(data=arrays, qat={"mode": "dynamic", "activation_type": "int4"}), "activation_type"),
        (dict(data=arrays, qat=True, qat_momentum=1.5), "momentum"),
        (dict(data=arrays, qat=True, qat_momentum="fast"), "qat_momentum"),
        (dict(data=batches, qat=True), "calibration"),
        (dict(data=batches, qat="static"), "calibration"),
        (dict(data=arrays, qat=True, calibration={"pixels": x}), "'x'"),
    ]
    for arguments, needle in cases:
        with pytest.raises(kerf.KerfError, match=needle):
            kerf.train(path, data=arguments.pop("data"), loss=loss, epochs=1, batch_size=BATCH, threads=1, **arguments)
        assert open(path, "rb").read() == original, arguments
    for arguments, needle in [(dict(qat="bogus"), "mode"), (dict(calibration={"x": x}), "calibration"),
                              (dict(qat={"bogus": 1}), "bogus")]:
        with pytest.raises(kerf.KerfError, match=needle):
            kerf.distill(teacher, path, data={"x": x}, threads=1, **arguments)
        assert open(path, "rb").read() == original
    with pytest.raises(kerf.KerfError, match="calibration"):
        kerf.distill(teacher, path, data=lambda epoch: iter([{"x": x}]), threads=1, qat=True)
    assert open(path, "rb").read() == original
    # Dynamic QAT needs no calibration, from arrays or batches.
    kerf.train(path, tmp_path / "dynamic.onnx", data=batches, loss=loss, epochs=1, threads=1, qat="dynamic")
    assert "MatMulInteger" in op_types(tmp_path / "dynamic.onnx")
