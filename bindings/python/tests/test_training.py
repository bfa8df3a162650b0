"""Training against PyTorch (CPU, float32): the same model, weights and batches, trained by Kerf on
the exported ONNX file and by torch.optim on the module. Tolerances: losses 1e-5 relative per
step, weights 1e-5 absolute after 20 steps (two engines' float32 sums differ in their last
bits); optimizers on a model whose gradients both compute exactly, 1e-6 relative; learning
rates 1e-12 relative (both compute them in float64)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import kerf
from kerf import KerfError, Status
from torch_training import SmallCNN, TinyEncoder, distinct, export, in_torch_layout, kerf_names, mlp, relative_gap, torch_steps

torch.set_num_threads(1)


def classification_batches(count, batch=4, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, features)).astype(np.float32), rng.integers(0, classes, batch).astype(np.int64))
            for _ in range(count)]


def torch_batches(batches):
    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]


def assert_same_parameters(module, trainer, names, atol):
    """Every parameter of `module` equals the trainer's (`names` from kerf_names before training)."""
    parameters = trainer.parameters()
    assert len(names) == len(list(module.parameters())) == len(parameters)
    for torch_name, (kerf_name, transposed) in names.items():
        reference = dict(module.named_parameters())[torch_name]
        got = in_torch_layout(parameters[kerf_name], transposed)
        np.testing.assert_allclose(got, reference.detach().numpy(), atol=atol, rtol=0, err_msg=torch_name)


def matched(module, trainer, feeds):
    """The trainer (its graph built by one evaluate) and its parameters matched to `module`'s."""
    trainer.evaluate(feeds)
    return trainer, kerf_names(module, trainer)


OPTIMIZERS = [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1), kerf.optim.SGD(lr=0.1)),
    ("sgd_momentum", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
     kerf.optim.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("nesterov", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
     kerf.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("adam", lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.01), kerf.optim.Adam(lr=1e-2, weight_decay=0.01)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
     kerf.optim.AdamW(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
    ("amsgrad", lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True), kerf.optim.AdamW(lr=1e-2, amsgrad=True)),
]


@pytest.mark.parametrize("name,make_torch,kerf_optimizer", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_mlp_training_matches_pytorch(tmp_path, name, make_torch, kerf_optimizer):
    module = mlp(seed=1)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    batches = classification_batches(20)
    trainer, names = matched(module, kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                                                  optimizer=kerf_optimizer, threads=1), {"x": batches[0][0], "y": batches[0][1]})
    assert trainer.parameter_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    kerf_losses = [trainer.step({"x": x, "y": y}) for x, y in batches]
    torch_losses = torch_steps(module, make_torch(module.parameters()), torch.nn.functional.cross_entropy, torch_batches(batches))
    assert len(kerf_losses) == len(torch_losses) == 20
    assert relative_gap(kerf_losses, torch_losses) < 1e-5
    assert trainer.steps == 20
    assert_same_parameters(module, trainer, names, atol=1e-5)


class Scale(torch.nn.Module):
    """y = x * w: both engines compute its MSE gradient 2·(y − t)·x / 8 exactly, so parameters
    differ only by the optimizers' arithmetic."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0, 0.25]]))

    def forward(self, x):
        return x * self.w


@pytest.mark.parametrize("name,make_torch,kerf_optimizer", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_updates_match_torch_optim(tmp_path, name, make_torch, kerf_optimizer):
    module = Scale()
    path = export(module, (torch.ones(2, 4),), tmp_path / "scale.onnx", ["x"], ["y"])
    rng = np.random.default_rng(3)
    batches = [(np.round(rng.standard_normal((2, 4)) * 4).astype(np.float32) / 4,
                np.round(rng.standard_normal((2, 4)) * 4).astype(np.float32) / 4) for _ in range(12)]
    trainer = kerf.Trainer(path, loss=kerf.loss.MSE(output="y", target="t"), optimizer=kerf_optimizer,
                           trainable=["w"], threads=1)
    optimizer = make_torch(module.parameters())
    for x, t in batches:
        trainer.step({"x": x, "t": t})
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(module(torch.from_numpy(x)), torch.from_numpy(t)).backward()
        optimizer.step()
        np.testing.assert_allclose(trainer.parameters()["w"], module.w.detach().numpy(), rtol=1e-6, atol=1e-7)


SCHEDULES = [
    ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5), kerf.optim.StepLR(4, gamma=0.5)),
    ("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 7, 7], gamma=0.3),
     kerf.optim.MultiStepLR([3, 7, 7], gamma=0.3)),
    ("exponential", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), kerf.optim.ExponentialLR(0.9)),
    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
     kerf.optim.CosineAnnealingLR(7, eta_min=0.01)),
    ("onecycle", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=25),
     kerf.optim.OneCycleLR(max_lr=0.5, total_steps=25)),
]


@pytest.mark.parametrize("name,make_torch,kerf_schedule", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_learning_rate_schedules_match_torch(tmp_path, name, make_torch, kerf_schedule):
    module = Scale()
    path = export(module, (torch.ones(2, 4),), tmp_path / "scale.onnx", ["x"], ["y"])
    trainer = kerf.Trainer(path, loss=kerf.loss.MSE(output="y", target="t"),
                           optimizer=kerf.optim.SGD(lr=0.1, momentum=0.9), schedule=kerf_schedule, threads=1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    scheduler = make_torch(optimizer)
    x = np.ones((2, 4), np.float32)
    kerf_rates, torch_rates = [], []
    for _ in range(25):
        kerf_rates.append(trainer.learning_rate)
        torch_rates.append(scheduler.get_last_lr()[0])
        trainer.step({"x": x, "t": x})
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(module(torch.from_numpy(x)), torch.from_numpy(x)).backward()
        optimizer.step()
        scheduler.step()
    assert len(kerf_rates) == 25
    assert relative_gap(kerf_rates, torch_rates) < 1e-12
    np.testing.assert_allclose(trainer.parameters()["w"], module.w.detach().numpy(), rtol=1e-5, atol=1e-6)


LOSSES = [
    ("ce", kerf.loss.CrossEntropy(output="logits", labels="y"), lambda o, y: torch.nn.functional.cross_entropy(o, y), "int"),
    ("ce_smoothing", kerf.loss.CrossEntropy(output="logits", labels="y", label_smoothing=0.2),
     lambda o, y: torch.nn.functional.cross_entropy(o, y, label_smoothing=0.2), "int"),
    ("ce_soft", kerf.loss.CrossEntropy(output="logits", labels="y", label_smoothing=0.1),
     lambda o, y: torch.nn.functional.cross_entropy(o, y, label_smoothing=0.1), "soft"),
    ("ce_sum", kerf.loss.CrossEntropy(output="logits", labels="y", reduction="sum"),
     lambda o, y: torch.nn.functional.cross_entropy(o, y, reduction="sum"), "int"),
    ("ce_probabilities", kerf.loss.CrossEntropy(output="probabilities", labels="y", from_probabilities=True),
     lambda o, y: torch.nn.functional.nll_loss(torch.log(torch.softmax(o, dim=1)), y), "int"),
    ("mse", kerf.loss.MSE(output="logits", target="y"), torch.nn.functional.mse_loss, "float"),
    ("l1", kerf.loss.L1(output="logits", target="y"), torch.nn.functional.l1_loss, "float"),
    ("huber", kerf.loss.Huber(output="logits", target="y", delta=0.5),
     lambda o, y: torch.nn.functional.huber_loss(o, y, delta=0.5), "float"),
    ("bce", kerf.loss.BCEWithLogits(output="logits", target="y"), torch.nn.functional.binary_cross_entropy_with_logits, "unit"),
    ("weighted_sum", 0.3 * kerf.loss.MSE(output="logits", target="y") + kerf.loss.L1(output="logits", target="y"),
     lambda o, y: 0.3 * torch.nn.functional.mse_loss(o, y) + torch.nn.functional.l1_loss(o, y), "float"),
]


class WithProbabilities(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        logits = self.inner(x)
        return logits, torch.softmax(logits, dim=1)


@pytest.mark.parametrize("name,loss,torch_loss,labels", LOSSES, ids=[l[0] for l in LOSSES])
def test_losses_and_their_gradients_match_pytorch(tmp_path, name, loss, torch_loss, labels):
    module = WithProbabilities(mlp(seed=2))
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits", "probabilities"])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    y = {"int": lambda: rng.integers(0, 3, 5).astype(np.int64),
         "soft": lambda: rng.dirichlet(np.ones(3), 5).astype(np.float32),
         "float": lambda: rng.standard_normal((5, 3)).astype(np.float32),
         "unit": lambda: rng.uniform(0, 1, (5, 3)).astype(np.float32)}[labels]()
    trainer = kerf.Trainer(path, loss=loss, threads=1)
    kerf_loss = trainer.backward({"x": x, "y": y})
    gradients = trainer.gradients()
    reference = torch_loss(module(torch.from_numpy(x))[0], torch.from_numpy(y))
    reference.backward()
    assert abs(kerf_loss - reference.item()) <= 1e-5 * abs(reference.item()) + 1e-7
    names = kerf_names(module, trainer)
    assert len(names) == 4 and set(gradients) == {k for k, _ in names.values()}
    for torch_name, parameter in module.named_parameters():
        kerf_name, transposed = names[torch_name]
        got = in_torch_layout(gradients[kerf_name], transposed)
        np.testing.assert_allclose(got, parameter.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=torch_name)


@pytest.mark.parametrize("opset", [17, 14])
def test_bert_style_encoder_trains_as_in_pytorch(tmp_path, opset):
    """At opset 14 the exporter writes LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div nodes; GELU is
    Div/Erf/Add/Mul at both. With graph optimizations Kerf fuses each chain into one node before
    differentiating (LayerNormalization, Gelu); without, it differentiates the chains as written."""
    torch.manual_seed(4)
    module = distinct(TinyEncoder())
    ids = torch.randint(0, 50, (2, 6))
    path = export(module, (ids,), tmp_path / "encoder.onnx", ["ids"], ["logits"], opset=opset)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "Erf" in ops and ("LayerNormalization" in ops) == (opset == 17)
    rng = np.random.default_rng(6)
    batches = [(rng.integers(0, 50, (4, 6)).astype(np.int64), rng.integers(0, 3, 4).astype(np.int64)) for _ in range(20)]
    for optimize in (True, False):
        reference = TinyEncoder()
        reference.load_state_dict(module.state_dict())
        trainer, names = matched(reference, kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                                                         optimizer=kerf.optim.AdamW(lr=3e-3), threads=1, optimize=optimize),
                                 {"ids": batches[0][0], "y": batches[0][1]})
        losses = [trainer.step({"ids": x, "y": y}) for x, y in batches]
        torch_losses = torch_steps(reference, torch.optim.AdamW(reference.parameters(), lr=3e-3),
                                   torch.nn.functional.cross_entropy, torch_batches(batches))
        assert len(losses) == 20
        assert relative_gap(losses, torch_losses) < 1e-4, (optimize, losses, torch_losses)
        assert_same_parameters(reference, trainer, names, atol=1e-4)


def test_cnn_with_batchnorm_trains_as_in_pytorch(tmp_path):
    """Training mode as PyTorch's model.train(): BatchNormalization on batch statistics, its
    running statistics updated (unbiased variance) and written to the trained file."""
    torch.manual_seed(5)
    module = distinct(SmallCNN())
    path = export(module, (torch.zeros(2, 3, 12, 12),), tmp_path / "cnn.onnx", ["image"], ["logits"])
    assert sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node) == 3
    rng = np.random.default_rng(7)
    batches = [(rng.standard_normal((4, 3, 12, 12)).astype(np.float32), rng.integers(0, 4, 4).astype(np.int64))
               for _ in range(20)]
    reference = SmallCNN()
    reference.load_state_dict(module.state_dict())
    trainer, names = matched(reference, kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                                                     optimizer=kerf.optim.SGD(lr=0.05, momentum=0.9), threads=1),
                             {"image": batches[0][0], "y": batches[0][1]})
    losses = [trainer.step({"image": x, "y": y}) for x, y in batches]
    torch_losses = torch_steps(reference, torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9),
                               torch.nn.functional.cross_entropy, torch_batches(batches))
    assert len(losses) == 20
    assert relative_gap(losses, torch_losses) < 1e-4, (losses, torch_losses)
    assert_same_parameters(reference, trainer, names, atol=1e-4)
    out = tmp_path / "trained.onnx"
    trainer.save(out)
    stored = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    buffers = {k: v.numpy() for k, v in reference.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    assert len(buffers) == 6
    for name, value in buffers.items():
        matches = [k for k, v in stored.items() if v.shape == value.shape and np.allclose(v, value, rtol=1e-4, atol=1e-5)]
        assert matches, name
    reference.eval()
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ort.InferenceSession(str(out)).run(None, {"image": x})[0], expected, rtol=1e-3, atol=1e-4)


def test_trained_model_is_a_plain_onnx_file_onnxruntime_runs(tmp_path):
    module = mlp(seed=3)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    trainer = kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                           optimizer=kerf.optim.SGD(lr=0.5), threads=1)
    for x, y in classification_batches(5):
        trainer.step({"x": x, "y": y})
    out = tmp_path / "trained.onnx"
    trainer.save(out)
    onnx.checker.check_model(str(out), full_check=True)
    original, trained = onnx.load(path), onnx.load(str(out))
    assert [n.op_type for n in trained.graph.node] == [n.op_type for n in original.graph.node]
    assert [i.name for i in trained.graph.initializer] == [i.name for i in original.graph.initializer]
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    expected = ort.InferenceSession(str(out)).run(None, {"x": x})[0]
    with kerf.load(str(out)) as model, model.session() as session:
        np.testing.assert_allclose(session.run({"x": x})["logits"], expected, rtol=1e-5, atol=1e-6)
    changed = [a for a, b in zip(trained.graph.initializer, original.graph.initializer)
               if not np.array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))]
    assert len(changed) == 4


def test_clipping_and_accumulation_match_pytorch(tmp_path):
    module = mlp(seed=5)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    batches = classification_batches(12)
    trainer, names = matched(module, kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                                                  optimizer=kerf.optim.SGD(lr=0.5, momentum=0.5), max_grad_norm=0.3,
                                                  accumulation_steps=3, threads=1), {"x": batches[0][0], "y": batches[0][1]})
    for x, y in batches:
        trainer.step({"x": x, "y": y})
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.5)
    for k in range(0, 12, 3):
        optimizer.zero_grad()
        for x, y in batches[k:k + 3]:
            (torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y)) / 3).backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 0.3)
        optimizer.step()
    assert trainer.steps == 4
    assert_same_parameters(module, trainer, names, atol=1e-5)


def test_frozen_and_trainable_select_parameters(tmp_path):
    module = mlp(seed=6)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    x, y = classification_batches(1)[0]
    frozen = kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"), frozen=["0.weight", "0.bias"])
    frozen.step({"x": x, "y": y})
    assert frozen.parameter_names == ["2.weight", "2.bias"]
    only = kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"), trainable=["Gemm"])
    only.evaluate({"x": x, "y": y})
    assert len(only.parameter_names) == 4


def test_checkpoint_and_resume_give_the_weights_of_an_uninterrupted_run(tmp_path):
    module = mlp(seed=7)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    rng = np.random.default_rng(8)
    data = {"x": rng.standard_normal((40, 8)).astype(np.float32), "y": rng.integers(0, 3, 40).astype(np.int64)}
    options = dict(loss=kerf.loss.CrossEntropy(output="logits", labels="y"), optimizer=kerf.optim.Adam(lr=1e-2),
                   schedule=kerf.optim.StepLR(3, gamma=0.5), epochs=3, batch_size=8, seed=11, threads=1)
    whole = tmp_path / "whole.onnx"
    report = kerf.train(path, whole, data=data, **options)
    assert [e["epoch"] for e in report.epochs] == [0, 1, 2] and report.steps == 15

    # A run killed at step 8 (after the checkpoint of step 6), resumed from its checkpoint.
    checkpoint = tmp_path / "run.npz"
    killed = tmp_path / "killed.onnx"
    with pytest.raises(KerfError) as error:
        kerf.train(path, killed, data=data, checkpoint=checkpoint, checkpoint_every=3,
                   progress=lambda step, total, epoch, loss, lr: step < 8, **options)
    assert error.value.status == Status.CANCELLED
    assert not killed.exists()
    assert np.load(checkpoint)["trainer/step"][0] == 6
    resumed = tmp_path / "resumed.onnx"
    report = kerf.train(path, resumed, data=data, resume_from=checkpoint, **options)
    assert report.steps == 15
    a, b = onnx.load(str(whole)), onnx.load(str(resumed))
    assert len(a.graph.initializer) == len(b.graph.initializer) == 4
    for x, y in zip(a.graph.initializer, b.graph.initializer):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(x), onnx.numpy_helper.to_array(y))


def test_train_reports_validation_accuracy_and_keeps_the_best_epoch(tmp_path):
    module = mlp(seed=9, sizes=(8, 32, 3))
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    rng = np.random.default_rng(10)
    centers = rng.standard_normal((3, 8)) * 2
    labels = rng.integers(0, 3, 300)
    x = (centers[labels] + rng.standard_normal((300, 8))).astype(np.float32)
    seen = []
    report = kerf.train(path, tmp_path / "out.onnx", data={"x": x[:240], "y": labels[:240]},
                        validation={"x": x[240:], "y": labels[240:]},
                        loss=kerf.loss.CrossEntropy(output="logits", labels="y"), optimizer=kerf.optim.Adam(lr=1e-2),
                        epochs=5, batch_size=16, progress=lambda *args: seen.append(args) or True)
    assert len(report.epochs) == 5 and len(seen) == 75
    assert seen[-1][0] == 75 and seen[-1][1] == 75
    assert report.epochs[-1]["validation_accuracy"] > 0.8
    assert report.best_epoch == int(np.argmin([e["validation_loss"] for e in report.epochs]))
    assert report.epochs[-1]["loss"] < report.epochs[0]["loss"]


def test_bad_input_gives_clear_errors_and_leaves_the_file_alone(tmp_path):
    module = mlp(seed=12)
    path = export(module, (torch.zeros(2, 8),), tmp_path / "mlp.onnx", ["x"], ["logits"])
    original = open(path, "rb").read()
    x, y = classification_batches(1)[0]
    with pytest.raises(KerfError) as error:
        kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="scores", labels="y"))
    assert error.value.status == Status.INVALID_ARGUMENT and "'scores'" in error.value.message
    trainer = kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"))
    with pytest.raises(KerfError) as error:
        trainer.step({"x": x})
    assert "'y' was not fed" in error.value.message
    trainer.step({"x": x, "y": y})
    with pytest.raises(KerfError) as error:
        trainer.step({"x": x, "y": y.astype(np.float32)})
    assert "fed as" in error.value.message
    before = trainer.parameters()
    with pytest.raises(KerfError) as error:
        trainer.step({"x": np.full_like(x, np.nan), "y": y})
    assert "nan" in error.value.message.lower()
    after = trainer.parameters()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(KerfError):
        kerf.train(path, data={"x": x, "y": y[:2]}, loss=kerf.loss.CrossEntropy(output="logits", labels="y"))
    assert open(path, "rb").read() == original


def test_an_op_without_a_gradient_rule_is_named_with_its_node_and_parameter(tmp_path):
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
                               helper.make_node("Einsum", ["h"], ["y"], name="odd", equation="ij->ji")],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])], [w])
    path = tmp_path / "einsum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    trainer = kerf.Trainer(str(path), loss=kerf.loss.MSE(output="y", target="t"))
    with pytest.raises(KerfError) as error:
        trainer.step({"x": np.ones((2, 4), np.float32), "t": np.zeros((4, 2), np.float32)})
    assert error.value.status == Status.UNSUPPORTED
    assert "Einsum" in error.value.message and "'odd'" in error.value.message and "'w'" in error.value.message
