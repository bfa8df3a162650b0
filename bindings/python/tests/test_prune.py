"""kerf.prune and kerf.sensitivity, checked against numpy, onnx.checker and ONNX Runtime."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import kerf
import models



def weights(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def run_kerf(path, feeds, sparse_kernels=True):
    with kerf.load(str(path)) as model, model.session(sparse_kernels=sparse_kernels) as session:
        return session.run(feeds)


def check_valid_and_agrees(path, feeds, full_check=True):
    """The file passes the ONNX checker and ONNX Runtime and Kerf give the same outputs."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=full_check)
    expected = models.run_ort(model, feeds)
    got = run_kerf(path, feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


@pytest.fixture
def mlp_file(tmp_path):
    return Path(models.save(models.mlp(in_features=24, hidden=40, classes=6), tmp_path / "mlp.onnx"))


@pytest.fixture
def cnn_file(tmp_path):
    return models.save(models.cnn(channels=8, size=8), tmp_path / "cnn.onnx")


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_magnitude_layer_scope_hits_the_target_in_every_tensor(tmp_path, cnn_file, sparsity):
    out = tmp_path / "pruned.onnx"
    report = kerf.prune(cnn_file, out, sparsity=sparsity)
    before, after = weights(cnn_file), weights(out)
    assert sorted(t.name for t in report.tensors) == ["block1_w", "block2_w", "fc_w"]
    for entry in report.tensors:
        w0, w = before[entry.name], after[entry.name]
        zeros = int(np.sum(w == 0))
        assert abs(zeros - sparsity * w.size) <= 1, entry.name
        assert entry.zeros == zeros and entry.shape == list(w.shape)
        # The smallest weights went; the kept ones are untouched.
        assert np.abs(w0[w != 0]).min() >= np.abs(w0[w == 0]).max()
        np.testing.assert_array_equal(w[w != 0], w0[w != 0])
    for name in ("block1_b", "fc_b", "block1_scale"):
        np.testing.assert_array_equal(after[name], before[name])
    check_valid_and_agrees(out, {"image": models.random_feed((2, 3, 8, 8))})


def test_global_scope_uses_one_threshold_and_caps_each_tensor(tmp_path, mlp_file):
    out = tmp_path / "pruned.onnx"
    report = kerf.prune(mlp_file, out, sparsity=0.6, scope="global", max_tensor_sparsity=0.9)
    before, after = weights(mlp_file), weights(out)
    pruned = ("w1", "w2")
    total = sum(before[n].size for n in pruned)
    assert sum(int(np.sum(after[n] == 0)) for n in pruned) == round(0.6 * total)
    kept = min(np.abs(before[n][after[n] != 0]).min() for n in pruned)
    removed = max(np.abs(before[n][after[n] == 0]).max() for n in pruned)
    assert kept >= removed
    assert report.scope == "global" and report.overall_sparsity == pytest.approx(0.6, abs=1 / total)
    for n in pruned:
        assert np.mean(after[n] == 0) <= 0.9 + 1e-9


def test_exclude_min_elements_and_per_tensor_map(tmp_path, cnn_file):
    out = tmp_path / "pruned.onnx"
    report = kerf.prune(cnn_file, out, sparsity=0.5, exclude=["block1_conv"], per_tensor={"fc_w": 0.8}, min_elements=0)
    after = weights(out)
    assert np.sum(after["block1_w"] == 0) == 0
    assert abs(np.sum(after["fc_w"] == 0) - 0.8 * after["fc_w"].size) <= 1
    assert abs(np.sum(after["block2_w"] == 0) - 0.5 * after["block2_w"].size) <= 1
    assert {s.name: s.reason for s in report.skipped} == {"block1_w": "excluded"}

    report = kerf.prune(cnn_file, out, sparsity=0.5, min_elements=100)
    assert [s.name for s in report.skipped] == ["fc_w"]
    assert "minimum" in report.skipped[0].reason


def _groups(w, m, axis):
    """w's values in groups of m consecutive elements along `axis` (zero-padded at the end)."""
    moved = np.moveaxis(w, axis, -1)
    length = moved.shape[-1]
    padded = np.concatenate([moved, np.zeros(moved.shape[:-1] + (-length % m,), w.dtype)], axis=-1)
    return padded.reshape(-1, m)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8)])
def test_n_of_m_pattern_holds_in_every_group_along_the_reduction_dimension(tmp_path, n, m):
    model = models.cnn(channels=16, size=8)
    path = models.save(model, tmp_path / "cnn.onnx")
    out = tmp_path / "nm.onnx"
    report = kerf.prune(path, out, method=f"{n}:{m}")
    assert report.method == f"{n}:{m}" and report.target_sparsity == pytest.approx(1 - n / m)
    before, after = weights(path), weights(out)
    # Conv W[M, C, kh, kw] reduces over C; Gemm B[K, N] (transB 0) over K.
    for name, axis in (("block2_w", 1), ("fc_w", 0)):
        groups, original = _groups(after[name], m, axis), _groups(before[name], m, axis)
        nonzero = np.count_nonzero(groups, axis=1)
        assert nonzero.max() <= n, name
        full = _groups(np.ones_like(before[name]), m, axis).sum(axis=1) == m
        assert (nonzero[full] == n).all(), name
        for g, g0 in zip(groups[full], original[full]):
            assert np.abs(g0[g != 0]).min() >= np.abs(g0[g == 0]).max()
    check_valid_and_agrees(out, {"image": models.random_feed((2, 3, 8, 8))})


def test_n_of_m_follows_transposed_gemm_weights(tmp_path, mlp_file):
    out = tmp_path / "nm.onnx"
    kerf.prune(mlp_file, out, method="n:m", n=2, m=4)
    after = weights(out)
    # fc1 is Gemm(transB=1): w1 is [N, K] and groups run along its last axis.
    assert np.count_nonzero(after["w1"].reshape(40, 6, 4), axis=2).max() == 2
    assert np.count_nonzero(after["w2"].T.reshape(6, 10, 4), axis=2).max() == 2


def test_in_place_rewrite_is_atomic_and_a_failure_leaves_the_file_byte_identical(tmp_path, mlp_file):
    original = mlp_file.read_bytes()
    with pytest.raises(kerf.KerfError) as error:
        kerf.prune(mlp_file, sparsity=1.5)
    assert error.value.status == kerf.Status.INVALID_ARGUMENT
    with pytest.raises(kerf.KerfError) as error:
        kerf.prune(mlp_file, tmp_path / "missing" / "out.onnx")
    assert error.value.status == kerf.Status.IO
    assert mlp_file.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx"], "no temporary files left behind"

    report = kerf.prune(mlp_file, sparsity=0.5)
    assert mlp_file.read_bytes() != original
    assert report.nonzero_parameters_after < report.nonzero_parameters_before
    check_valid_and_agrees(mlp_file, {"input": models.random_feed((3, 24))})


def test_sparse_initializer_storage_is_smaller_and_onnx_runtime_loads_it(tmp_path):
    model = models.mlp(in_features=64, hidden=128, classes=10)
    path = models.save(model, tmp_path / "mlp.onnx")
    dense, sparse = tmp_path / "dense.onnx", tmp_path / "sparse.onnx"
    kerf.prune(path, dense, sparsity=0.9)
    report = kerf.prune(path, sparse, sparsity=0.9, store_sparse=True)
    assert all(t.stored_sparse for t in report.tensors)
    assert sparse.stat().st_size < 0.5 * dense.stat().st_size
    stored = onnx.load(str(sparse))
    assert sorted(s.values.name for s in stored.graph.sparse_initializer) == ["w1", "w2"]
    # onnx's shape inference types sparse initializers as sparse tensors, which MatMul/Gemm
    # do not accept, so only the structural check applies to such files.
    feeds = {"input": models.random_feed((4, 64))}
    check_valid_and_agrees(sparse, feeds, full_check=False)
    # Same weights, same (dense) kernel: the storage form must not change a single bit. (With
    # sparse kernels on, each session times its own kernel choice, and rounding may differ.)
    np.testing.assert_array_equal(run_kerf(sparse, feeds, sparse_kernels=False)["probs"],
                                  run_kerf(dense, feeds, sparse_kernels=False)["probs"])
    # At 30% sparsity COO would be larger: weights stay dense.
    report = kerf.prune(path, sparse, sparsity=0.3, store_sparse=True)
    assert not any(t.stored_sparse for t in report.tensors)


def test_pruning_a_loaded_model_leaves_earlier_sessions_alone(mlp_file):
    feeds = {"input": models.random_feed((2, 24))}
    with kerf.load(mlp_file) as model:
        before = model.session()
        expected = before.run(feeds)["probs"]
        report = kerf.prune(model, sparsity=0.8)
        assert report.overall_sparsity == pytest.approx(0.8, abs=1e-2)
        np.testing.assert_array_equal(before.run(feeds)["probs"], expected)
        after = model.session().run(feeds)["probs"]
        assert not np.allclose(after, expected)
        reference = models.run_ort(onnx.load_from_string(model.to_bytes()), feeds)["probs"]
        np.testing.assert_allclose(after, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arguments,message", [
    ({"method": "3:2"}, "N < M"),
    ({"method": "blocks"}, "method must be one of"),
    ({"scope": "model"}, "scope must be one of"),
    ({"criterion": "random"}, "criterion must be one of"),
    ({"sparsity": float("nan")}, "sparsity must be in"),
    ({"per_tensor": {"w1": -0.5}}, "sparsity of 'w1'"),
])
def test_bad_options_raise_clear_errors(mlp_file, arguments, message):
    with pytest.raises(kerf.KerfError) as error:
        kerf.prune(mlp_file, **arguments)
    assert error.value.status == kerf.Status.INVALID_ARGUMENT
    assert message in str(error.value)


def test_digits_accuracy_after_pruning_agrees_between_kerf_and_onnx_runtime(tmp_path, digits):
    path, x, y = digits
    float_accuracy = np.mean(models.run_ort(onnx.load(str(path)), {"X": x})["label"] == y)
    rows = []
    for method, sparsity in (("magnitude", 0.5), ("magnitude", 0.7), ("magnitude", 0.9), ("2:4", 0.5)):
        out = tmp_path / f"digits_{method.replace(':', '_')}_{sparsity}.onnx"
        kerf.prune(path, out, method=method, sparsity=sparsity)
        ort_accuracy = np.mean(models.run_ort(onnx.load(str(out)), {"X": x})["label"] == y)
        kerf_accuracy = np.mean(run_kerf(out, {"X": x})["label"] == y)
        assert kerf_accuracy == ort_accuracy
        rows.append((method, sparsity, ort_accuracy))
    print("\ndigits accuracy: float %.4f; " % float_accuracy + "; ".join("%s %.0f%% %.4f" % r for r in rows))
    assert rows[0][2] >= float_accuracy - 0.02, "50% magnitude pruning costs at most 2 points"
    assert rows[0][2] >= rows[1][2] >= rows[2][2], "more pruning, less accuracy"


def test_sensitivity_table_on_labelled_data(digits):
    path, x, y = digits
    calls = []
    table = kerf.sensitivity(path, {"X": x}, labels=y, levels=(0.3, 0.6, 0.95),
                             progress=lambda done, total, message: calls.append((done, total, message)))
    assert table.samples == len(y) and table.levels == [0.3, 0.6, 0.95]
    assert table.baseline_accuracy == pytest.approx(np.mean(models.run_ort(onnx.load(str(path)), {"X": x})["label"] == y))
    tensors = sorted({row.tensor for row in table.rows})
    assert tensors == ["coefficient", "coefficient1"]
    assert len(table.rows) == 6
    assert calls[-1][:2] == (6, 6) and calls[0][:2] == (0, 6)
    for name in tensors:
        rows = [row for row in table.rows if row.tensor == name]
        errors = [row.relative_error for row in rows]
        assert errors == sorted(errors) and errors[0] > 0
        assert rows[-1].accuracy < table.baseline_accuracy
        assert all(-1 <= row.cosine <= 1 for row in rows)
    # The 30% row of a tensor matches pruning that tensor alone and running ONNX Runtime.
    row = table.rows[0]
    with kerf.load(path) as model:
        other = [name for name in tensors if name != row.tensor]
        kerf.prune(model, per_tensor={row.tensor: row.level}, exclude=other)
        probabilities = models.run_ort(onnx.load_from_string(model.to_bytes()), {"X": x})["probabilities"]
    reference = models.run_ort(onnx.load(str(path)), {"X": x})["probabilities"]
    assert row.relative_error == pytest.approx(np.linalg.norm(probabilities - reference) / np.linalg.norm(reference), rel=1e-3)


def test_sensitivity_reads_npz_and_can_be_cancelled(tmp_path, digits):
    path, x, y = digits
    data = tmp_path / "data.npz"
    np.savez(data, X=x[:50], labels=y[:50])
    table = kerf.sensitivity(path, data, levels=[0.5])
    assert table.samples == 50 and table.baseline_accuracy is not None and len(table.rows) == 2

    with pytest.raises(kerf.KerfError) as error:
        kerf.sensitivity(path, data, progress=lambda done, total, message: done < 2)
    assert error.value.status == kerf.Status.CANCELLED

    def failing(done, total, message):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        kerf.sensitivity(path, data, progress=failing)
    with pytest.raises(kerf.KerfError) as error:
        kerf.sensitivity(path, {"X": x[:5]}, labels=y[:4])
    assert error.value.status == kerf.Status.SHAPE_MISMATCH


def test_prune_reports_progress_and_can_be_cancelled(tmp_path, digits):
    path, _, _ = digits
    copy = tmp_path / "digits.onnx"
    copy.write_bytes(Path(path).read_bytes())
    original = copy.read_bytes()
    calls = []
    kerf.prune(copy, tmp_path / "magnitude.onnx", progress=lambda done, total, message: calls.append((done, total, message)))
    assert calls == [(0, 2, "magnitude pruning"), (1, 2, "coefficient"), (2, 2, "coefficient1")]
    calls.clear()
    kerf.prune(copy, tmp_path / "channel.onnx", method="channel",
               progress=lambda done, total, message: calls.append((done, total, message)))
    assert calls[0] == (0, 2, "channel pruning") and [c[:2] for c in calls[1:]] == [(1, 2), (2, 2)]

    with pytest.raises(kerf.KerfError) as error:
        kerf.prune(copy, progress=lambda done, total, message: done < 1)
    assert error.value.status == kerf.Status.CANCELLED

    def failing(done, total, message):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        kerf.prune(copy, method="channel", progress=failing)
    assert copy.read_bytes() == original, "a cancelled in-place prune leaves the file as it was"


def test_prune_progress_true_draws_a_bar_on_stderr(tmp_path, digits, capfd):
    path, _, _ = digits
    kerf.prune(path, tmp_path / "p.onnx", progress=True)
    err = capfd.readouterr().err
    try:
        import tqdm  # noqa: F401 - tqdm draws its own bar
        assert "prune" in err and "2/2" in err, err
    except ImportError:
        assert "\rprune [" + "#" * 30 + "] 2/2 coefficient1" in err and err.endswith("\n"), err
    kerf.prune(path, tmp_path / "p2.onnx", progress=False)
    assert capfd.readouterr().err == ""
