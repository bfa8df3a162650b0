"""One session run from several threads at once, and intermediate values as outputs."""

import threading

import numpy as np
import onnx
import pytest
from onnx import helper

import kerf
import models

RTOL, ATOL = 1e-4, 1e-5

CASES = {
    "mlp": (models.mlp, "input", (16,)),
    "cnn": (models.cnn, "image", (3, 8, 8)),
}


@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("case", sorted(CASES))
def test_one_session_from_eight_threads(tmp_path, case, threads):
    build, input_name, sample_shape = CASES[case]
    proto = build()
    feeds = [models.random_feed((1 + k % 3,) + sample_shape, seed=k) for k in range(12)]
    with kerf.load(models.save(proto, tmp_path / f"{case}.onnx")) as model, model.session(threads=threads) as session:
        expected = [session.run({input_name: feed}) for feed in feeds]
        failures, runs = [], [0] * 8

        def work(t):
            for r in range(60):
                k = (t * 5 + r) % len(feeds)
                got = session.run({input_name: feeds[k]})
                if list(got) != list(expected[k]) or any(
                        got[name].shape != expected[k][name].shape or not np.array_equal(got[name], expected[k][name])
                        for name in got):
                    failures.append(f"thread {t} run {r}: input {k} differs")
                runs[t] += 1

        workers = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert failures == []
    assert runs == [60] * 8
    for feed, result in zip(feeds, expected):
        reference = models.run_ort(proto, {input_name: feed})
        assert list(result) == list(reference)
        for name in reference:
            np.testing.assert_allclose(result[name], reference[name], rtol=RTOL, atol=ATOL)


def _with_outputs(proto, names):
    """`proto` with `names` appended to its graph outputs (types left for ONNX Runtime to infer)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    copy.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    return copy


def test_intermediate_values_match_onnxruntime(tmp_path):
    proto = models.cnn()
    feed = models.random_feed((2, 3, 8, 8), seed=3)
    visible = ["gap", "flat"]
    fused = "block1_conv"  # the Conv output that BatchNormalization folding removes
    # relu1 is fused into the Conv, pooled is kept channels-last: neither is in the plan
    reference = models.run_ort(_with_outputs(proto, visible + [fused, "relu1", "pooled"]), {"image": feed})
    with kerf.load(models.save(proto, tmp_path / "cnn.onnx")) as model:
        with model.session() as session:
            got = session.run({"image": feed}, outputs=visible + ["logits"])
            assert list(got) == visible + ["logits"]
            for name in visible + ["logits"]:
                assert got[name].shape == reference[name].shape
                np.testing.assert_allclose(got[name], reference[name], rtol=RTOL, atol=ATOL)
            with pytest.raises(kerf.KerfError, match="kept_values") as error:
                session.run({"image": feed}, outputs=[fused])
            assert error.value.status == kerf.Status.INVALID_ARGUMENT
            with pytest.raises(kerf.KerfError, match="no value named 'absent'"):
                session.run({"image": feed}, outputs=["absent"])
        with model.session(kept_values=[fused, "relu1", "pooled"]) as keeping:
            got = keeping.run({"image": feed}, outputs=[fused, "relu1", "pooled", "logits"])
            assert [a.shape for a in got.values()] == [reference[n].shape for n in (fused, "relu1", "pooled", "logits")]
            for name in (fused, "relu1", "pooled", "logits"):
                np.testing.assert_allclose(got[name], reference[name], rtol=RTOL, atol=ATOL)
            assert [o.name for o in keeping.outputs] == ["logits"]
        with pytest.raises(kerf.KerfError, match="absent"):
            model.session(kept_values=["absent"])


def test_close_waits_for_runs_in_flight(tmp_path):
    proto = models.mlp(in_features=256, hidden=1024)
    feed = models.random_feed((64, 256))
    with kerf.load(models.save(proto, tmp_path / "mlp.onnx")) as model:
        session = model.session(threads=1)
        started, results, errors = threading.Event(), [], []

        def work():
            started.set()
            try:
                for _ in range(20):
                    results.append(session.run({"input": feed})["probs"])
            except kerf.KerfError as error:
                errors.append(error)

        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        session.close()
        worker.join()
    assert len(results) + len(errors) > 0
    assert all(r.shape == (64, 10) for r in results)
    assert all("closed" in str(e) for e in errors)
