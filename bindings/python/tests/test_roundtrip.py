"""Model.save / Model.to_bytes write valid ONNX that ONNX Runtime runs the same;
saving is atomic."""

import os
import resource
import signal
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import kerf
import models

RTOL, ATOL = 1e-4, 1e-5

CASES = {
    "mlp": (models.mlp, "input", (5, 16)),
    "cnn": (models.cnn, "image", (5, 3, 8, 8)),
}


def annotated(proto):
    """`proto` with metadata that a round trip must keep."""
    proto.doc_string = "a model for round-trip tests"
    proto.model_version = 7
    onnx.helper.set_model_props(proto, {"author": "kerf-tests", "license": "MIT"})
    return proto


def assert_same_model(saved, original, input_name, feed_shape):
    onnx.checker.check_model(saved, full_check=True)
    assert saved.ir_version == original.ir_version
    assert {(o.domain, o.version) for o in saved.opset_import} == \
        {(o.domain, o.version) for o in original.opset_import}
    assert saved.producer_name == original.producer_name
    assert saved.doc_string == original.doc_string
    assert saved.model_version == original.model_version
    assert {p.key: p.value for p in saved.metadata_props} == \
        {p.key: p.value for p in original.metadata_props}
    assert [(n.op_type, n.name) for n in saved.graph.node] == \
        [(n.op_type, n.name) for n in original.graph.node]
    assert [i.name for i in saved.graph.input] == [i.name for i in original.graph.input]
    assert [o.name for o in saved.graph.output] == [o.name for o in original.graph.output]
    saved_weights = {t.name: numpy_helper.to_array(t) for t in saved.graph.initializer}
    for tensor in original.graph.initializer:
        np.testing.assert_array_equal(saved_weights[tensor.name], numpy_helper.to_array(tensor))

    feed = {input_name: models.random_feed(feed_shape, seed=11)}
    expected = models.run_ort(original, feed)
    actual = models.run_ort(saved, feed)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_writes_equivalent_onnx(tmp_path, case):
    build, input_name, feed_shape = CASES[case]
    original = annotated(build())
    target = tmp_path / "saved.onnx"
    with kerf.load(models.save(original, tmp_path / "original.onnx")) as model:
        model.save(target)  # os.PathLike
        model.save(str(tmp_path / "saved_str.onnx"))
    assert_same_model(onnx.load(str(target)), original, input_name, feed_shape)
    assert target.read_bytes() == (tmp_path / "saved_str.onnx").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["original.onnx", "saved.onnx", "saved_str.onnx"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_to_bytes_and_load_bytes(tmp_path, case):
    build, input_name, feed_shape = CASES[case]
    original = annotated(build())
    with kerf.load_bytes(original.SerializeToString()) as model:
        data = model.to_bytes()
    assert isinstance(data, bytes) and data
    assert_same_model(onnx.load_from_string(data), original, input_name, feed_shape)

    feed = {input_name: models.random_feed(feed_shape, seed=12)}
    expected = models.run_ort(original, feed)
    with kerf.load_bytes(data) as reloaded, reloaded.session() as session:
        actual = session.run(feed)
        assert reloaded.to_bytes() == data  # serialization is stable
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=RTOL, atol=ATOL)


def test_load_bytes_accepts_buffers(tmp_path):
    data = models.mlp().SerializeToString()
    for buffer in (bytearray(data), memoryview(data)):
        with kerf.load_bytes(buffer) as model:
            assert [i.name for i in model.inputs] == ["input"]


def test_save_over_existing_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old contents that are not a model")
    with kerf.load_bytes(models.mlp().SerializeToString()) as model:
        model.save(target)
        expected = model.to_bytes()
    assert target.read_bytes() == expected
    assert os.listdir(tmp_path) == ["model.onnx"]  # no temporary file left behind
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)


def test_save_in_place_over_the_loaded_file(tmp_path):
    path = models.save(annotated(models.cnn()), tmp_path / "cnn.onnx")
    with kerf.load(path) as model:
        model.save(path)
        with model.session() as session:  # the model is in memory; the file is not needed
            session.run({"image": models.random_feed((1, 3, 8, 8))})
    assert_same_model(onnx.load(path), annotated(models.cnn()), "image", (2, 3, 8, 8))
    assert os.listdir(tmp_path) == ["cnn.onnx"]


def test_save_into_missing_directory_fails_without_creating_anything(tmp_path):
    target = tmp_path / "missing" / "model.onnx"
    with kerf.load_bytes(models.mlp().SerializeToString()) as model:
        with pytest.raises(kerf.KerfError) as failure:
            model.save(target)
    assert failure.value.status == kerf.Status.IO
    assert "missing" in failure.value.message
    assert os.listdir(tmp_path) == []


def test_save_onto_a_directory_fails_and_keeps_it(tmp_path):
    directory = tmp_path / "model.onnx"
    directory.mkdir()
    (directory / "keep.txt").write_text("keep")
    with kerf.load_bytes(models.mlp().SerializeToString()) as model:
        with pytest.raises(kerf.KerfError) as failure:
            model.save(directory)
    assert failure.value.status in (kerf.Status.IO, kerf.Status.INVALID_ARGUMENT)
    assert failure.value.message
    assert (directory / "keep.txt").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_failed_save_leaves_the_original_byte_identical(tmp_path):
    # Running as root defeats read-only directories, so make the write itself
    # fail: RLIMIT_FSIZE turns writes past the limit into EFBIG (with SIGXFSZ
    # ignored). The original file already exists, so only the new copy is hit.
    target = Path(models.save(models.cnn(), tmp_path / "model.onnx"))
    original = target.read_bytes()
    with kerf.load_bytes(models.mlp(hidden=256).SerializeToString()) as model:
        limit = 4096
        assert len(model.to_bytes()) > 2 * limit
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            model.save(target)
        except kerf.KerfError as error:
            failure = error
        else:
            failure = None
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous_handler)
    assert failure is not None, "save succeeded although the file could not be written"
    assert failure.status == kerf.Status.IO, failure
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.onnx"]  # the temporary file was removed


def test_closed_model_refuses_to_save(tmp_path):
    model = kerf.load_bytes(models.mlp().SerializeToString())
    model.close()
    with pytest.raises(kerf.KerfError) as failure:
        model.save(tmp_path / "x.onnx")
    assert failure.value.status == kerf.Status.INVALID_ARGUMENT
    assert not (tmp_path / "x.onnx").exists()
