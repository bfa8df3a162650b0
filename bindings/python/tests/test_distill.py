"""kerf.distill against PyTorch (the same student and teacher, weights and batches: losses and
trained weights within 1e-5), keep_sparsity, the digits MLP pruned to 90% and distilled back,
and bad input (a clear KerfError, the student file untouched)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

import kerf
from torch_training import export, mlp, relative_gap

F = torch.nn.functional


def batches(count=6, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 8)).astype(np.float32), rng.integers(0, 3, batch).astype(np.int64))
            for _ in range(count)]


def trained_weights(path):
    """{initializer name: array} of a model file."""
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def torch_loss(kind, temperature, alpha):
    """loss(student output, teacher output, labels) as PyTorch users write it."""
    def loss(s, t, y):
        if kind == "kl":
            kd = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean") * temperature ** 2
            return kd if alpha is None else alpha * kd + (1 - alpha) * F.cross_entropy(s, y)
        if kind == "mse":
            return F.mse_loss(s, t)
        return (1 - F.cosine_similarity(s, t, dim=-1)).mean()
    return loss


CASES = [("kl", 2.0, None), ("kl", 4.0, 0.3), ("kl", 1.0, None), ("mse", 2.0, None), ("cosine", 2.0, None)]


@pytest.mark.parametrize("kind,temperature,alpha", CASES, ids=[f"{k}-T{t}-alpha{a}" for k, t, a in CASES])
def test_distillation_matches_pytorch(tmp_path, kind, temperature, alpha):
    teacher, student = mlp(seed=2), mlp(seed=1)
    teacher_path = export(teacher, (torch.zeros(2, 8),), tmp_path / "teacher.onnx", ["x"], ["logits"])
    student_path = export(student, (torch.zeros(2, 8),), tmp_path / "student.onnx", ["x"], ["logits"])
    data = batches()
    feeds = [{"x": x, "y": y} if alpha is not None else {"x": x} for x, y in data]
    report = kerf.distill(teacher_path, student_path, tmp_path / "out.onnx", data=feeds, output_loss=kind,
                          temperature=temperature, alpha=0.5 if alpha is None else alpha,
                          labels="y" if alpha is not None else None,
                          optimizer=kerf.optim.SGD(lr=0.1, momentum=0.9), threads=1, teacher_threads=1)

    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    loss_function, losses = torch_loss(kind, temperature, alpha), []
    teacher.eval()
    student.train()
    for x, y in data:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        with torch.no_grad():
            t = teacher(x)
        optimizer.zero_grad()
        loss = loss_function(student(x), t, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert report.steps == len(data) == 6 and len(report.epochs) == 1
    assert relative_gap([report.epochs[0]["loss"]], [np.mean(losses)]) < 1e-5
    weights = trained_weights(tmp_path / "out.onnx")
    parameters = dict(student.named_parameters())
    assert sorted(weights) == sorted(parameters) and len(weights) == 4
    for name, value in parameters.items():
        got = weights[name] if weights[name].shape == value.shape else weights[name].T
        np.testing.assert_allclose(got, value.detach().numpy(), atol=1e-5, rtol=0, err_msg=name)
    assert [entry["name"] for entry in report.sparsity] == ["0.weight", "2.weight"]
    assert all(entry["sparsity"] == 0 for entry in report.sparsity)


def test_keep_sparsity_in_plain_training(tmp_path):
    module = mlp(seed=3)
    with torch.no_grad():
        module[0].weight[:, ::2] = 0  # half of the first layer pruned
    path = export(module, (torch.zeros(2, 8),), tmp_path / "pruned.onnx", ["x"], ["logits"])
    before = trained_weights(path)["0.weight"]
    assert (before == 0).sum() == 64
    data = {"x": np.concatenate([x for x, _ in batches()]), "y": np.concatenate([y for _, y in batches()])}
    loss = kerf.loss.CrossEntropy(output="logits", labels="y")
    for keep, expect_zeros in [(True, 64), (False, 0)]:
        out = tmp_path / f"trained-{keep}.onnx"
        report = kerf.train(path, out, data=data, loss=loss, optimizer=kerf.optim.AdamW(lr=0.01), epochs=2, threads=1,
                            keep_sparsity=keep)
        after = trained_weights(out)["0.weight"]
        assert after.shape == before.shape
        assert (after == 0).sum() == expect_zeros
        assert np.count_nonzero(after[before != 0] != before[before != 0]) == 64  # the rest trained
        first = next(entry for entry in report.sparsity if entry["name"] == "0.weight")
        assert first["elements"] == 128 and first["sparsity"] == pytest.approx(expect_zeros / 128)


def accuracy(path, x, y):
    probabilities = ort.InferenceSession(str(path)).run(["probabilities"], {"X": x})[0]
    return float((probabilities.argmax(axis=1) == y).mean())


def test_pruned_digits_mlp_distilled_back(tmp_path, digits):
    path, x_test, y_test = digits
    train = np.load(path.parent / "digits_train.npz")
    pruned = tmp_path / "pruned.onnx"
    kerf.prune(path, pruned, sparsity=0.9, scope="global")
    pruned_accuracy, float_accuracy = accuracy(pruned, x_test, y_test), accuracy(path, x_test, y_test)
    assert pruned_accuracy < float_accuracy - 0.2
    weights = ("coefficient", "coefficient1")  # the intercepts are [1, N]: rank 2, but not pruned
    sparsity = {name: float((value == 0).mean()) for name, value in trained_weights(pruned).items() if name in weights}
    assert len(sparsity) == 2 and all(0.5 < s < 0.95 for s in sparsity.values())  # global: 93% and 72%

    seen = []
    steps = 60 * -(-len(train["x"]) // 32)
    report = kerf.distill(path, pruned, tmp_path / "distilled.onnx", data={"X": train["x"]}, validation={"X": x_test},
                          temperature=4, optimizer=kerf.optim.Adam(lr=1e-2), schedule=kerf.optim.CosineAnnealingLR(steps),
                          epochs=60, threads=1, restore_best=False,
                          progress=lambda step, total, epoch, loss, lr: seen.append((step, total)))
    assert len(report.epochs) == 60 and report.steps == steps and seen[-1] == (steps, steps)
    agreement = [epoch["validation_accuracy"] for epoch in report.epochs]  # top-1 agreement with the teacher
    assert agreement[-1] > agreement[0] and agreement[-1] > 0.95
    distilled = tmp_path / "distilled.onnx"
    onnx.checker.check_model(str(distilled), full_check=True)
    assert accuracy(distilled, x_test, y_test) > float_accuracy - 0.02  # 0.9689 against 0.9733 measured
    after = {name: float((value == 0).mean()) for name, value in trained_weights(distilled).items() if name in weights}
    assert after == sparsity  # exactly the pruned sparsity
    reported = {entry["name"]: entry["sparsity"] for entry in report.sparsity if entry["name"] in weights}
    assert reported == pytest.approx(sparsity)
    with kerf.load(distilled) as model, model.session() as session:
        ours = session.run({"X": x_test[:50]})["probabilities"]
    reference = ort.InferenceSession(str(distilled)).run(["probabilities"], {"X": x_test[:50]})[0]
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_bad_input_is_a_clear_error_and_leaves_the_student_alone(tmp_path):
    teacher_path = export(mlp(seed=2), (torch.zeros(2, 8),), tmp_path / "teacher.onnx", ["x"], ["logits"])
    student_path = export(mlp(seed=1), (torch.zeros(2, 8),), tmp_path / "student.onnx", ["x"], ["logits"])
    other_path = export(mlp(seed=1), (torch.zeros(2, 8),), tmp_path / "other.onnx", ["pixels"], ["scores"])
    original = open(student_path, "rb").read()
    x = batches()[0][0]
    cases = [
        (dict(teacher=teacher_path, student=other_path, data={"pixels": x}), "'x'"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x}, outputs={"logits": "nope"}), "'nope'"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x}, output_loss="kld"), "output_loss"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x}, temperature=0), "temperature"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x}, alpha=2), "alpha"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x}, labels="y"), "'y'"),
        (dict(teacher=teacher_path, student=student_path, data={"x": x * np.nan}), "loss"),
        (dict(teacher=tmp_path / "missing.onnx", student=student_path, data={"x": x}), "missing.onnx"),
    ]
    for arguments, needle in cases:
        with pytest.raises(kerf.KerfError, match=needle):
            kerf.distill(arguments.pop("teacher"), arguments.pop("student"), **arguments)
        assert open(student_path, "rb").read() == original
    with pytest.raises(kerf.KerfError, match="needs data"):
        kerf.distill(teacher_path, student_path)


def test_gradual_pruning_while_distilling_reaches_exactly_the_final_sparsity(tmp_path, digits):
    path, x_test, y_test = digits
    train = np.load(path.parent / "digits_train.npz")
    report = kerf.distill(path, path, tmp_path / "gradual.onnx", data={"X": train["x"]}, temperature=4,
                          optimizer=kerf.optim.Adam(lr=1e-2), epochs=40, threads=1, gradual_prune=0.9)
    weights = trained_weights(tmp_path / "gradual.onnx")
    for name in ("coefficient", "coefficient1"):
        assert (weights[name] == 0).sum() == round(0.9 * weights[name].size)
    assert (weights["intercepts"] == 0).sum() == 0  # biases are not pruned
    assert {entry["name"]: entry["sparsity"] for entry in report.sparsity}["coefficient"] == pytest.approx(0.9, abs=1e-3)
    assert accuracy(tmp_path / "gradual.onnx", x_test, y_test) > 0.9


def test_movement_pruning_matches_pytorch(tmp_path):
    """Sanh et al.'s hard movement pruning: scores S −= g·w before each SGD update (g the masked
    gradient), after updates 2 and 4 each weight pruned to the schedule's sparsity by lowest S
    (elements already zero first), zeros kept in between."""
    module = mlp(seed=5)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    data = batches(count=6)
    trainer = kerf.Trainer(path, kerf.loss.CrossEntropy(output="logits", labels="y"), optimizer=kerf.optim.SGD(lr=0.1),
                           threads=1, gradual_prune={"sparsity": 0.6, "start": 2, "end": 4, "every": 2, "criterion": "movement"})
    weights = [p for name, p in module.named_parameters() if name.endswith("weight")]
    masks = [torch.ones_like(w) for w in weights]
    scores = [torch.zeros_like(w) for w in weights]
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    for step, (x, y) in enumerate(data, start=1):
        trainer.step({"x": x, "y": y})
        optimizer.zero_grad()
        F.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        with torch.no_grad():
            for w, m, s in zip(weights, masks, scores):
                w.grad *= m
                s -= w.grad * w
            optimizer.step()
            for w, m in zip(weights, masks):
                w *= m
            if step in (2, 4):
                sparsity = 0.6 - 0.6 * (1 - (step - 2) / 2) ** 3
                for w, m, s in zip(weights, masks, scores):
                    k = round(sparsity * w.numel())
                    key = torch.where(w.flatten() == 0, torch.full_like(s.flatten(), -float("inf")), s.flatten())
                    order = sorted(range(w.numel()), key=lambda i: (key[i].item(), i))
                    flat = m.flatten()
                    flat[order[:k]] = 0
                    m.copy_(flat.view_as(m))
                    w *= m
        kerf_weights = trainer.parameters()
        for name, w in zip(("0.weight", "2.weight"), weights):
            got = kerf_weights[name]
            assert got.shape == tuple(w.shape)
            assert np.array_equal(got == 0, (w == 0).numpy()), (step, name)
            np.testing.assert_allclose(got, w.detach().numpy(), atol=1e-5, err_msg=f"step {step}")
    assert int((trainer.parameters()["0.weight"] == 0).sum()) == round(0.6 * 128)
    with pytest.raises(kerf.KerfError, match="criterion"):
        kerf.Trainer(path, kerf.loss.CrossEntropy(output="logits", labels="y"), gradual_prune={"sparsity": 0.5, "criterion": "random"})


def test_gradual_pruning_schedule_by_hand(tmp_path):
    path = export(mlp(seed=3), (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    x, y = batches()[0]
    trainer = kerf.Trainer(path, kerf.loss.CrossEntropy(output="logits", labels="y"), optimizer=kerf.optim.SGD(lr=0.01),
                           threads=1, gradual_prune={"sparsity": 0.5, "start": 0, "end": 4, "every": 2})
    zeros = []
    for _ in range(6):
        trainer.step({"x": x, "y": y})
        zeros.append(int((trainer.parameters()["0.weight"] == 0).sum()))
    # s_t = 0.5 − 0.5·(1 − t/4)³ after updates 2 and 4 of the 128 elements: 56 then 64.
    assert zeros == [0, 56, 56, 64, 64, 64]
    with pytest.raises(kerf.KerfError, match="end step"):
        kerf.Trainer(path, kerf.loss.CrossEntropy(output="logits", labels="y"),
                     gradual_prune=0.5).step({"x": x, "y": y})
    for bad in (1.5, {"sparsity": 0.5, "end": -1}, {"final": 0.5}, "half"):
        with pytest.raises(kerf.KerfError):
            kerf.train(path, tmp_path / "out.onnx", data={"x": x, "y": y},
                       loss=kerf.loss.CrossEntropy(output="logits", labels="y"), gradual_prune=bad)
