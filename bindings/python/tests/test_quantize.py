"""kerf.quantize: files checked by onnx.checker, run in ONNX Runtime and Kerf, accuracy kept."""

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import channel_models
import kerf
import models
import transformer_models

sys.path.insert(0, str(models.__file__).rsplit("/bindings/", 1)[0] + "/scripts")
import bench_prune  # noqa: E402
from int8_reference import file_meaning  # noqa: E402


def run_kerf(path, feeds):
    with kerf.load(str(path)) as model, model.session() as session:
        return session.run(feeds)


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def relative_error(got, expected):
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))


def check_file(path, feeds, tolerance=0.01):
    """full_check passes; Kerf's outputs on the file are within `tolerance` relative L2 error of
    ONNX Runtime running it, either as written (each QuantizeLinear/DequantizeLinear in float:
    the exact ONNX semantics) or with its fused int8 kernels, and within 10% of the latter.
    Returns ONNX Runtime's (optimized) outputs.

    Why two references: Kerf's integer products are exact at every instruction-set level. ONNX
    Runtime's are exact with VNNI; without it its u8s8 kernels (MLAS) add each pair of u8 x s8
    products with int16 saturation, in its fused kernels and in MatMulInteger even with graph
    optimizations disabled: there the file's meaning comes from onnx's reference evaluator
    (`file_meaning`)."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    exact = file_meaning(model, feeds)
    fused = models.run_ort(model, feeds)
    got = run_kerf(path, feeds)
    for name, value in fused.items():
        if value.dtype.kind == "f":
            errors = relative_error(got[name], exact[name]), relative_error(got[name], value)
            assert min(errors) <= tolerance and errors[1] <= 0.1, (name, errors)
        else:
            assert np.mean(got[name] == value) >= 0.99, name
    return fused


def op_types(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def accuracy(outputs, labels):
    return float(np.mean(outputs["label"] == labels))


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_digits_loses_at_most_0_3_points(tmp_path, digits, mode):
    path, x, y = digits
    out = tmp_path / f"{mode}.onnx"
    report = kerf.quantize(path, out, mode=mode, calibration={"X": x[:300]})
    float_accuracy = accuracy(models.run_ort(onnx.load(str(path)), {"X": x}), y)
    outputs = check_file(out, {"X": x})
    assert accuracy(outputs, y) >= float_accuracy - 0.003
    assert accuracy(run_kerf(out, {"X": x}), y) >= float_accuracy - 0.003
    assert [n.op_type for n in report.nodes] == ["MatMul", "MatMul"]
    assert report.agreement.top1_agreement >= 0.98 and report.agreement.samples == 300
    assert all(n.sqnr_db > 15 for n in report.nodes)
    expected = {"dynamic": {"DynamicQuantizeLinear", "MatMulInteger"}, "static": {"QuantizeLinear", "DequantizeLinear"}}[mode]
    assert expected <= set(op_types(out))
    assert "ConvInteger" not in op_types(out)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_agreement_is_measured_on_validation_data_when_given(tmp_path, digits, mode):
    path, x, _ = digits
    calibration, validation = x[:300], x[300:]
    out = tmp_path / "validated.onnx"
    report = kerf.quantize(path, out, mode=mode, calibration={"X": calibration}, validation={"X": validation})
    assert report.agreement.data == "validation" and report.agreement.samples == len(validation)
    float_labels, int8_labels = run_kerf(path, {"X": validation})["label"], run_kerf(out, {"X": validation})["label"]
    assert report.agreement.top1_agreement == pytest.approx(float(np.mean(float_labels == int8_labels)))
    calibrated = kerf.quantize(path, tmp_path / "calibrated.onnx", mode=mode, calibration={"X": calibration})
    assert calibrated.agreement.data == "calibration" and calibrated.agreement.samples == len(calibration)
    if mode == "dynamic":  # needs no calibration data: agreement on the validation data alone
        alone = kerf.quantize(path, tmp_path / "alone.onnx", validation=[{"X": validation[:64]}, {"X": validation[64:]}])
        assert alone.agreement.data == "validation" and alone.agreement.samples == len(validation)
        assert alone.nodes and all(n.sqnr_db is None for n in alone.nodes)
    with pytest.raises(kerf.KerfError, match="validation data is empty"):
        kerf.quantize(path, tmp_path / "bad.onnx", mode=mode, calibration={"X": calibration}, validation={})


def test_dynamic_file_matches_onnx_runtime_form_and_weights(tmp_path):
    src = models.save(bench_prune.big_mlp((64, 128, 32)), tmp_path / "mlp.onnx")
    out = tmp_path / "q.onnx"
    kerf.quantize(src, out, mode="dynamic")
    q = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    w0 = numpy_helper.to_array(next(t for t in onnx.load(src).graph.initializer if t.name == "w0"))
    wq, scale = inits["w0_quantized"], inits["w0_scale"]
    assert wq.dtype == np.int8 and scale.shape == (128,) and np.abs(wq).max() <= 127
    # Symmetric per column: w ~ q * scale, each column using its full range.
    np.testing.assert_allclose(wq * scale, w0, atol=float(scale.max()) / 2 + 1e-7)
    np.testing.assert_allclose(scale, np.abs(w0).max(axis=0) / 127, rtol=1e-6)
    assert not np.any(inits["w0_zero_point"])
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)}
    expected = models.run_ort(onnx.load(src), feeds)["a1"]
    got = check_file(out, feeds)["a1"]
    assert cosine(got, expected) > 0.999


def test_static_qdq_layout(tmp_path):
    src = models.save(channel_models.resnet(widths=(8, 16), blocks=1)[0], tmp_path / "cnn.onnx")
    out = tmp_path / "q.onnx"
    calibration = [{"x": np.random.default_rng(k).standard_normal((4, 3, 32, 32)).astype(np.float32)} for k in range(3)]
    report = kerf.quantize(src, out, mode="static", calibration=calibration)
    q = onnx.load(str(out))
    assert q.opset_import[0].version >= 13
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    nodes = {n.output[0]: n for n in q.graph.node}
    # BatchNorm was folded first; every Conv reads dequantized int8 weights (axis 0) and int32 bias.
    assert "BatchNormalization" not in op_types(out)
    for conv in (n for n in q.graph.node if n.op_type == "Conv"):
        x, w, b = (nodes[name] for name in conv.input)
        assert x.op_type == w.op_type == b.op_type == "DequantizeLinear", conv.name
        assert inits[w.input[0]].dtype == np.int8 and inits[b.input[0]].dtype == np.int32
        assert {a.name: a.i for a in w.attribute}.get("axis") == 0
        x_scale = inits[x.input[1]]
        np.testing.assert_allclose(inits[b.input[1]], x_scale * inits[w.input[1]], rtol=1e-6)
    # A Relu right after a Conv is fused: no QuantizeLinear between them.
    for relu in (n for n in q.graph.node if n.op_type == "Relu"):
        producer = nodes.get(relu.input[0])
        assert producer is not None and producer.op_type in ("Conv", "Add", "DequantizeLinear")
    assert report.activations and all(a.low <= 0 <= a.high for a in report.activations)
    assert report.activation_type == "uint8" and report.method == "minmax"


def test_resnet_static_keeps_99_percent_top1_agreement(tmp_path):
    model = channel_models.resnet()[0]
    src = models.save(model, tmp_path / "cnn.onnx")
    rng = np.random.default_rng(0)
    calibration = {"x": rng.standard_normal((64, 3, 32, 32)).astype(np.float32)}
    test = {"x": rng.standard_normal((200, 3, 32, 32)).astype(np.float32)}
    out = tmp_path / "q.onnx"
    report = kerf.quantize(src, out, mode="static", calibration=calibration, batch_size=16)
    expected = next(iter(models.run_ort(model, test).values()))
    got = next(iter(check_file(out, test).values()))
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.99
    assert report.agreement.top1_agreement >= 0.99
    kerf_outputs = next(iter(run_kerf(out, test).values()))
    assert np.mean(kerf_outputs.argmax(1) == expected.argmax(1)) >= 0.99


@pytest.mark.parametrize("mode,options", [("dynamic", {}), ("static", {"method": "percentile"}),
                                          ("static", {"smooth_quant": 0.5})])
def test_bert_keeps_cosine_995(tmp_path, mode, options):
    model = transformer_models.bert_encoder()
    src = models.save(model, tmp_path / "bert.onnx")
    calibration = [transformer_models.bert_feeds(2, 64, seed=k) for k in range(4)]
    out = tmp_path / "q.onnx"
    report = kerf.quantize(src, out, mode=mode, calibration=calibration, **options)
    feeds = transformer_models.bert_feeds(3, 48, seed=99)
    expected = models.run_ort(model, feeds)["last_hidden_state"]
    got = check_file(out, feeds)["last_hidden_state"]
    assert cosine(got, expected) >= 0.995
    assert cosine(run_kerf(out, feeds)["last_hidden_state"], expected) >= 0.995
    assert report.agreement.cosine >= 0.995
    if "smooth_quant" in options:
        assert len(report.smoothed) == 12  # Q, K, V, output, FFN in, FFN out of 2 layers


def test_weight_dominated_file_is_at_most_27_percent(tmp_path):
    src = models.save(bench_prune.big_mlp((256, 1024, 1024, 10)), tmp_path / "mlp.onnx")
    for mode in ("dynamic", "static"):
        out = tmp_path / f"{mode}.onnx"
        calibration = {"x": np.random.default_rng(0).standard_normal((16, 256)).astype(np.float32)}
        report = kerf.quantize(src, out, mode=mode, calibration=calibration)
        assert out.stat().st_size <= 0.27 * Path(src).stat().st_size, mode
        assert report.bytes_after == out.stat().st_size and report.size_ratio <= 0.27


def test_calibration_methods_clip_outliers(tmp_path):
    src = models.save(bench_prune.big_mlp((32, 64, 8)), tmp_path / "mlp.onnx")
    x = np.random.default_rng(0).standard_normal((512, 32)).astype(np.float32)
    x[0, 0] = 80.0  # one outlier
    ranges = {}
    for method in ("minmax", "percentile", "entropy"):
        report = kerf.quantize(src, tmp_path / f"{method}.onnx", mode="static", calibration={"x": x}, method=method,
                               percentile=99.9)
        ranges[method] = {a.name: (a.low, a.high) for a in report.activations}
        check_file(tmp_path / f"{method}.onnx", {"x": x[1:50]})
    assert ranges["minmax"]["x"][1] == pytest.approx(80.0)
    assert ranges["percentile"]["x"][1] < 10 and ranges["entropy"]["x"][1] < 20
    # The clipped range is close to the 99.9th percentile of |x|.
    assert ranges["percentile"]["x"][1] == pytest.approx(np.percentile(np.abs(x), 99.9), rel=0.05, abs=0.1)


def test_exclude_and_op_types_keep_nodes_float(tmp_path, digits):
    path, x, _ = digits
    report = kerf.quantize(path, tmp_path / "q.onnx", mode="static", calibration={"X": x[:64]}, exclude=["MatMul1"])
    assert [n.name for n in report.nodes] == ["MatMul"]
    assert {"name": "MatMul1", "reason": "excluded"} in report.float
    report = kerf.quantize(path, tmp_path / "q2.onnx", mode="dynamic", op_types=["Gemm"])
    assert report.nodes == [] and all("not selected" in f.reason for f in report.float)


def test_auto_tolerance_puts_worst_nodes_back_to_float(tmp_path):
    src = models.save(bench_prune.big_mlp((32, 64, 64, 8)), tmp_path / "mlp.onnx")
    x = {"x": np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)}
    loose = kerf.quantize(src, tmp_path / "a.onnx", mode="static", calibration=x, auto_tolerance=1.0)
    assert len(loose.nodes) == 3 and not loose.float
    strict = kerf.quantize(src, tmp_path / "b.onnx", mode="static", calibration=x, auto_tolerance=1e-4)
    assert len(strict.nodes) < 3 and any(f.reason.startswith("auto:") for f in strict.float)
    assert strict.agreement.relative_error <= 1e-4 or not strict.nodes


def test_embeddings_quantized_to_int8(tmp_path):
    model = transformer_models.bert_encoder(layers=1)
    src = models.save(model, tmp_path / "bert.onnx")
    out = tmp_path / "q.onnx"
    report = kerf.quantize(src, out, mode="dynamic", quantize_embeddings=True)
    assert len(report.embeddings) == 3 and all("embeddings" in name for name in report.embeddings)
    feeds = transformer_models.bert_feeds(2, 16)
    expected = models.run_ort(model, feeds)["last_hidden_state"]
    got = check_file(out, feeds)["last_hidden_state"]
    assert cosine(got, expected) >= 0.995


def test_embeddings_are_int8_by_default_where_their_error_allows(tmp_path):
    model = transformer_models.bert_encoder(layers=1)
    tables = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if "embeddings" in t.name}
    assert len(tables) == 3
    # One outlier makes the word table's per-tensor int8 form coarse: SQNR about 20 dB.
    word = next(name for name in tables if "word" in name)
    spiky = tables[word].copy()
    spiky[0, 0] = 60 * np.abs(spiky).max()
    for t in model.graph.initializer:
        if t.name == word:
            t.CopyFrom(numpy_helper.from_array(spiky, word))
    src = models.save(model, tmp_path / "bert.onnx")
    default = kerf.quantize(src, tmp_path / "default.onnx", mode="dynamic")
    assert sorted(default.embeddings) == sorted(name for name in tables if name != word)
    kept = [f for f in default.float if f.name == word]
    assert len(kept) == 1 and "SQNR" in kept[0].reason and "< 30" in kept[0].reason
    forced = kerf.quantize(src, tmp_path / "forced.onnx", mode="dynamic", quantize_embeddings=True)
    never = kerf.quantize(src, tmp_path / "never.onnx", mode="dynamic", quantize_embeddings=False)
    assert len(forced.embeddings) == 3 and never.embeddings == []
    assert forced.bytes_after < default.bytes_after < never.bytes_after
    int8_tables = {t.name for t in onnx.load(str(tmp_path / "default.onnx")).graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and "embeddings" in t.name and t.name.endswith("_quantized")}
    assert len(int8_tables) == 2
    feeds = transformer_models.bert_feeds(2, 16)
    expected = models.run_ort(model, feeds)["last_hidden_state"]
    assert cosine(check_file(tmp_path / "default.onnx", feeds)["last_hidden_state"], expected) >= 0.995


def test_in_place_rewrite_and_failures_leave_the_original(tmp_path, digits):
    path, x, _ = digits
    copy = tmp_path / "model.onnx"
    copy.write_bytes(Path(path).read_bytes())
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()

    with pytest.raises(kerf.KerfError, match="needs calibration data"):
        kerf.quantize(copy, mode="static")

    def broken():
        yield {"X": x[:10]}
        raise RuntimeError("data source failed")
    with pytest.raises(RuntimeError, match="data source failed"):
        kerf.quantize(copy, mode="static", calibration=broken())

    with pytest.raises(kerf.KerfError) as cancelled:
        kerf.quantize(copy, mode="static", calibration={"X": x[:64]}, batch_size=8, progress=lambda done, total, msg: done < 3)
    assert cancelled.value.status == kerf.Status.CANCELLED

    with pytest.raises(kerf.KerfError, match="mode must be one of"):
        kerf.quantize(copy, mode="int4")
    bad = {"X": x[:8].copy()}
    bad["X"][0, 0] = np.nan
    with pytest.raises(kerf.KerfError, match="NaN"):
        kerf.quantize(copy, mode="static", calibration=bad)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest

    seen = []
    report = kerf.quantize(copy, mode="static", calibration={"X": x[:64]}, batch_size=16,
                           progress=lambda done, total, msg: seen.append((done, total, msg)))
    assert hashlib.sha256(copy.read_bytes()).hexdigest() != digest
    assert report.calibration_batches == 4 and ("calibrating" in {m for _, _, m in seen})
    assert (4, 4, "calibrating") in seen
    onnx.checker.check_model(onnx.load(str(copy)), full_check=True)


def test_progress_true_draws_a_bar_on_stderr(tmp_path, digits, capfd):
    path, x, _ = digits
    kerf.quantize(path, tmp_path / "q.onnx", mode="static", calibration={"X": x[:64]}, batch_size=16, progress=True)
    err = capfd.readouterr().err
    try:
        import tqdm  # noqa: F401 - tqdm draws its own bar
        assert "quantize" in err and "4/4" in err, err
    except ImportError:
        # One line per phase, redrawn in place: the calibration's ends full, at 4 of 4 batches.
        assert "\rquantize [" + "#" * 30 + "] 4/4 calibrating" in err, err
        assert err.endswith("\n") and "#" * 31 not in err, err
    kerf.quantize(path, tmp_path / "q2.onnx", mode="static", calibration={"X": x[:64]}, progress=False)
    assert capfd.readouterr().err == ""


def test_calibration_sources_are_read_once_per_pass(tmp_path, digits):
    path, x, y = digits
    report = kerf.quantize(path, tmp_path / "q.onnx", mode="static",
                           calibration=[{"X": x[i:i + 50]} for i in range(0, 200, 50)])
    assert report.calibration_batches == 4 and report.agreement.samples == 200
    passes = []

    def batches():  # a fresh generator per pass: nothing is kept between passes
        passes.append(1)
        return ({"X": x[i:i + 40]} for i in range(0, 200, 40))
    streamed = kerf.quantize(path, tmp_path / "q2.onnx", mode="static", calibration=batches)
    assert len(passes) == 2 and streamed.calibration_batches == 5 and streamed.agreement.samples == 200
    assert [a.scale for a in streamed.activations] == [a.scale for a in report.activations]
    one_shot = kerf.quantize(path, tmp_path / "q3.onnx", mode="static", calibration=({"X": x[i:i + 40]} for i in range(0, 200, 40)))
    assert one_shot.calibration_batches == 5 and one_shot.agreement.samples == 200
