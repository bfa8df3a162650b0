"""External tensor data: Kerf reads ONNX external-data files and writes them back."""

import os

import numpy as np
import onnx
from onnx.external_data_helper import convert_model_to_external_data

import kerf
import models


def _save_external(tmp_path):
    model = models.mlp(in_features=64, hidden=128, classes=10)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = os.path.join(tmp_path, "mlp.onnx")
    onnx.save(model, path)
    return path


def test_loads_external_data_and_matches_onnxruntime(tmp_path):
    path = _save_external(str(tmp_path))
    feed = {"input": models.random_feed((4, 64))}
    expected = models.run_ort(onnx.load(path), feed)
    with kerf.load(path) as m:
        got = m.session(threads=1).run(feed)
    np.testing.assert_allclose(got["probs"], expected["probs"], rtol=1e-4, atol=1e-5)


def test_save_writes_external_data_beside_the_new_path(tmp_path):
    path = _save_external(str(tmp_path))
    out_dir = tmp_path / "copy"
    out_dir.mkdir()
    with kerf.load(path) as m:
        m.save(str(out_dir / "mlp.onnx"))
    assert (out_dir / "weights.bin").exists()
    stored = onnx.load(str(out_dir / "mlp.onnx"), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in stored.graph.initializer)
    saved = onnx.load(str(out_dir / "mlp.onnx"))
    onnx.checker.check_model(str(out_dir / "mlp.onnx"), full_check=True)
    original = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    for t in saved.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), original[t.name])


def test_external_data_outside_the_model_directory_is_refused(tmp_path):
    model = models.mlp(in_features=4, hidden=4, classes=2)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../escape.bin"
    path = os.path.join(str(tmp_path), "bad.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    try:
        kerf.load(path)
        raise AssertionError("expected KerfError")
    except kerf.KerfError as e:
        assert e.status == kerf.Status.INVALID_MODEL
        assert "escape.bin" in e.message
