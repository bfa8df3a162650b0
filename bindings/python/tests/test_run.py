"""Session.run agrees with ONNX Runtime; feeds and results behave like numpy."""

import threading

import numpy as np
import pytest
from onnx import TensorProto

import kerf
import models

RTOL, ATOL = 1e-4, 1e-5

CASES = {
    "mlp": (models.mlp, "input", (16,)),
    "cnn": (models.cnn, "image", (3, 8, 8)),
}


@pytest.fixture
def mlp_path(tmp_path):
    return models.save(models.mlp(), tmp_path / "mlp.onnx")


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_onnxruntime(tmp_path, case, batch):
    build, input_name, sample_shape = CASES[case]
    proto = build()
    feed = models.random_feed((batch,) + sample_shape, seed=batch)
    expected = models.run_ort(proto, {input_name: feed})

    with kerf.load(models.save(proto, tmp_path / f"{case}.onnx")) as model:
        with model.session() as session:
            actual = session.run({input_name: feed})

    assert list(actual) == list(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype
        assert actual[name].shape == expected[name].shape
        np.testing.assert_allclose(actual[name], expected[name], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threads, optimize", [(1, True), (1, False), (2, False), (None, True)])
def test_session_options_do_not_change_results(mlp_path, threads, optimize):
    feed = models.random_feed((5, 16), seed=3)
    expected = models.run_ort(models.mlp(), {"input": feed})["probs"]
    with kerf.load(mlp_path) as model, model.session(threads=threads, optimize=optimize) as session:
        np.testing.assert_allclose(session.run({"input": feed})["probs"], expected,
                                   rtol=RTOL, atol=ATOL)


def test_outputs_are_numpy_owned_copies(mlp_path):
    feed = models.random_feed((2, 16))
    with kerf.load(mlp_path) as model, model.session() as session:
        first = session.run({"input": feed})["probs"]
        assert first.flags.owndata and first.flags.writeable and first.flags.c_contiguous
        snapshot = first.copy()
        first[:] = -1.0  # must not disturb Kerf
        second = session.run({"input": feed})["probs"]
    np.testing.assert_array_equal(second, snapshot)
    np.testing.assert_allclose(snapshot.sum(axis=1), 1.0, rtol=1e-5)


def test_repeated_runs_with_different_batches(mlp_path):
    with kerf.load(mlp_path) as model, model.session() as session:
        for batch in (3, 1, 7, 3):
            feed = models.random_feed((batch, 16), seed=batch)
            expected = models.run_ort(models.mlp(), {"input": feed})["probs"]
            np.testing.assert_allclose(session.run({"input": feed})["probs"], expected,
                                       rtol=RTOL, atol=ATOL)


def test_runs_of_one_shape_return_new_arrays_each_time(tmp_path):
    # From the second run on, Kerf copies outputs of the expected shape into arrays Python
    # made; each run must still return its own, correct arrays, in every shape sequence.
    proto = models.two_outputs()
    with kerf.load(models.save(proto, tmp_path / "two.onnx")) as model, model.session() as session:
        seen = []
        for batch in (2, 2, 2, 5, 5, 2, 0, 0, 3):
            feed = models.random_feed((batch, 4), seed=batch + len(seen))
            expected = models.run_ort(proto, {"x": feed})
            result = session.run({"x": feed})
            for name, value in result.items():
                assert value.flags.owndata and value.flags.writeable and value.shape == (batch, 4)
                np.testing.assert_allclose(value, expected[name], rtol=RTOL, atol=ATOL)
                assert all(value is not other for other in seen)
            seen.extend(result.values())
            chosen = session.run({"x": feed}, outputs="sum")
            np.testing.assert_allclose(chosen["sum"], expected["sum"], rtol=RTOL, atol=ATOL)
        # Arrays returned earlier keep their values.
        np.testing.assert_allclose(seen[0], models.run_ort(proto, {"x": models.random_feed((2, 4), seed=2)})["relu"],
                                   rtol=RTOL, atol=ATOL)


def test_outputs_the_caller_still_holds_are_never_written_again(tmp_path):
    # Kerf refills the last run's output array only once nothing but the session refers to it:
    # results held whole, through a view or inside the returned dict keep their values.
    proto = models.two_outputs()
    with kerf.load(models.save(proto, tmp_path / "two.onnx")) as model, model.session() as session:
        feeds = [models.random_feed((3, 4), seed=seed) for seed in range(6)]
        expected = [models.run_ort(proto, {"x": feed}) for feed in feeds]
        held = session.run({"x": feeds[0]})["sum"]
        view = session.run({"x": feeds[1]})["sum"][1:]
        whole = session.run({"x": feeds[2]})
        for seed in (3, 4, 5, 3):  # results dropped at once: their arrays may be reused
            result = session.run({"x": feeds[seed]})
            for name in result:
                np.testing.assert_allclose(result[name], expected[seed][name], rtol=RTOL, atol=ATOL)
            del result
        np.testing.assert_allclose(held, expected[0]["sum"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(view, expected[1]["sum"][1:], rtol=RTOL, atol=ATOL)
        for name in whole:
            np.testing.assert_allclose(whole[name], expected[2][name], rtol=RTOL, atol=ATOL)
        a = session.run({"x": feeds[3]})["relu"]
        b = session.run({"x": feeds[4]})["relu"]
        assert a is not b and not np.shares_memory(a, b)
        # ... and a dropped result's array is the one filled next (the path the loop above takes).
        address = session.run({"x": feeds[5]})["relu"].ctypes.data
        assert session.run({"x": feeds[3]})["relu"].ctypes.data == address


def test_selected_outputs_in_requested_order(tmp_path):
    proto = models.two_outputs()
    feed = models.random_feed((3, 4))
    expected = models.run_ort(proto, {"x": feed})
    with kerf.load(models.save(proto, tmp_path / "two.onnx")) as model, model.session() as session:
        everything = session.run({"x": feed})
        assert list(everything) == ["relu", "neg", "sum"]
        chosen = session.run({"x": feed}, outputs=["sum", "relu"])
        assert list(chosen) == ["sum", "relu"]
        only = session.run({"x": feed}, outputs=["neg"])
        assert list(only) == ["neg"]
    for result in (everything, chosen, only):
        for name, value in result.items():
            np.testing.assert_allclose(value, expected[name], rtol=RTOL, atol=ATOL)


def test_non_contiguous_and_big_endian_feeds(mlp_path):
    base = models.random_feed((16, 6))
    feed = base.T  # Fortran-ordered view, shape (6, 16)
    assert not feed.flags.c_contiguous
    expected = models.run_ort(models.mlp(), {"input": np.ascontiguousarray(feed)})["probs"]
    with kerf.load(mlp_path) as model, model.session() as session:
        np.testing.assert_allclose(session.run({"input": feed})["probs"], expected,
                                   rtol=RTOL, atol=ATOL)
        swapped = np.ascontiguousarray(feed).astype(">f4")
        np.testing.assert_allclose(session.run({"input": swapped})["probs"], expected,
                                   rtol=RTOL, atol=ATOL)


def test_lists_take_the_declared_dtype(mlp_path):
    feed = models.random_feed((2, 16))
    expected = models.run_ort(models.mlp(), {"input": feed})["probs"]
    with kerf.load(mlp_path) as model, model.session() as session:
        np.testing.assert_allclose(session.run({"input": feed.tolist()})["probs"], expected,
                                   rtol=RTOL, atol=ATOL)


def test_session_outlives_its_closed_model(mlp_path):
    feed = models.random_feed((2, 16))
    model = kerf.load(mlp_path)
    session = model.session()
    model.close()
    model.close()  # closing twice is harmless
    expected = models.run_ort(models.mlp(), {"input": feed})["probs"]
    np.testing.assert_allclose(session.run({"input": feed})["probs"], expected,
                               rtol=RTOL, atol=ATOL)
    session.close()


def test_session_does_not_keep_its_model_alive(mlp_path):
    """The session runs without the model (whose weights it packed a copy of), so dropping
    the model frees it; session.model reads it while something else keeps it."""
    import gc
    import weakref

    feed = models.random_feed((2, 16))
    model = kerf.load(mlp_path)
    session = model.session()
    assert session.model is model
    dropped = weakref.ref(model)
    del model
    gc.collect()
    assert dropped() is None and session.model is None
    expected = models.run_ort(models.mlp(), {"input": feed})["probs"]
    for _ in range(2):
        np.testing.assert_allclose(session.run({"input": feed})["probs"], expected,
                                   rtol=RTOL, atol=ATOL)
    assert "kerf.Session of <kerf.Model" in repr(session)
    session.close()


def test_sessions_in_parallel_threads(mlp_path):
    feeds = [models.random_feed((4, 16), seed=seed) for seed in range(4)]
    expected = [models.run_ort(models.mlp(), {"input": feed})["probs"] for feed in feeds]
    results = [None] * len(feeds)
    with kerf.load(mlp_path) as model:
        shared = model.session(threads=1)

        def work(index):
            # Even slots share one session (Python serializes its runs);
            # odd slots get their own session from the shared model.
            if index % 2 == 0:
                results[index] = [shared.run({"input": feeds[index]})["probs"] for _ in range(5)]
            else:
                with model.session(threads=1) as own:
                    results[index] = [own.run({"input": feeds[index]})["probs"] for _ in range(5)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(feeds))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        shared.close()
    for got, want in zip(results, expected):
        assert got is not None
        for value in got:
            np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL)


IDENTITY_DTYPES = [
    (TensorProto.FLOAT, np.float32), (TensorProto.UINT8, np.uint8), (TensorProto.INT8, np.int8),
    (TensorProto.UINT16, np.uint16), (TensorProto.INT16, np.int16),
    (TensorProto.INT32, np.int32), (TensorProto.INT64, np.int64), (TensorProto.BOOL, np.bool_),
    (TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64),
    (TensorProto.UINT32, np.uint32), (TensorProto.UINT64, np.uint64),
]


@pytest.mark.parametrize("elem_type, dtype", IDENTITY_DTYPES,
                         ids=[np.dtype(d).name for _, d in IDENTITY_DTYPES])
def test_every_dtype_round_trips_through_identity(tmp_path, elem_type, dtype):
    proto = models.identity(elem_type, [2, 3])
    rng = np.random.default_rng(0)
    feed = (rng.integers(0, 2, (2, 3)) if dtype is np.bool_ else rng.integers(0, 100, (2, 3))).astype(dtype)
    expected = models.run_ort(proto, {"x": feed})["y"]
    with kerf.load(models.save(proto, tmp_path / "id.onnx")) as model, model.session() as session:
        actual = session.run({"x": feed})["y"]
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(actual, expected)


def test_scalar_and_empty_tensors(tmp_path):
    scalar_model = models.identity(TensorProto.FLOAT, [])
    with kerf.load(models.save(scalar_model, tmp_path / "scalar.onnx")) as model:
        with model.session() as session:
            result = session.run({"x": np.float32(2.5)})["y"]
    assert result.shape == () and result.dtype == np.float32 and result == 2.5

    empty_model = models.identity(TensorProto.FLOAT, ["N", 3])
    with kerf.load(models.save(empty_model, tmp_path / "empty.onnx")) as model:
        with model.session() as session:
            result = session.run({"x": np.zeros((0, 3), np.float32)})["y"]
    assert result.shape == (0, 3) and result.dtype == np.float32
