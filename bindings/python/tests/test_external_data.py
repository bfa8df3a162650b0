"""External tensor data: Kerf reads ONNX external-data files and writes them back."""

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import convert_model_to_external_data

import kerf
import models
from int8_reference import file_meaning


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
    assert sorted(os.listdir(str(out_dir))) == ["mlp.onnx", "mlp.onnx.data"]
    stored = onnx.load(str(out_dir / "mlp.onnx"), load_external_data=False)
    # Tensors of 1 KiB and more stay external; smaller ones are stored inline.
    for t in stored.graph.initializer:
        large = np.prod(t.dims) * 4 >= 1024
        assert (t.data_location == onnx.TensorProto.EXTERNAL) == large, t.name
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


# --- Nothing another model refers to is ever written -------------------------------------------

def _torch_style(tmp_path, hidden=128):
    """model.onnx + model.onnx.data in one folder, as torch.onnx.export(dynamo=True) writes."""
    model = models.mlp(in_features=64, hidden=hidden, classes=10)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="model.onnx.data",
                                   size_threshold=0)
    path = os.path.join(str(tmp_path), "model.onnx")
    onnx.save(model, path)
    return path


def _snapshot(folder):
    """{file name: bytes} of every file in folder."""
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def _outputs(path, feed):
    with kerf.load(path) as m:
        return m.session(threads=1).run(feed)["probs"]


def _check_valid(path, feed, reference):
    onnx.checker.check_model(path, full_check=True)
    got = _outputs(path, feed)
    assert got.shape == reference.shape
    np.testing.assert_allclose(file_meaning(path, feed)["probs"], got, rtol=1e-4, atol=1e-5)


def _compress(kind, src, dst):
    if kind == "dynamic":
        kerf.quantize(src, dst, mode="dynamic")
    elif kind == "static":
        kerf.quantize(src, dst, mode="static", calibration={"input": models.random_feed((16, 64))})
    elif kind == "prune":
        kerf.prune(src, dst, sparsity=0.5)
    else:
        with kerf.load(src) as m:
            m.save(dst)


@pytest.mark.parametrize("kind", ["dynamic", "static", "prune", "save"])
def test_compressing_beside_the_source_leaves_the_source_byte_identical(tmp_path, kind):
    src = _torch_style(tmp_path)
    feed = {"input": models.random_feed((4, 64))}
    before = _snapshot(str(tmp_path))
    reference = _outputs(src, feed)
    dst = os.path.join(str(tmp_path), "small.onnx")
    _compress(kind, src, dst)
    after = _snapshot(str(tmp_path))
    assert set(after) == set(before) | {"small.onnx", "small.onnx.data"}
    for name, data in before.items():
        assert after[name] == data, f"{name} was rewritten"
    np.testing.assert_array_equal(_outputs(src, feed), reference)
    stored = onnx.load(dst, load_external_data=False)
    locations = {e.value for t in stored.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"small.onnx.data"}
    _check_valid(dst, feed, reference)


@pytest.mark.parametrize("kind", ["dynamic", "prune", "save"])
def test_in_place_rewrites_never_touch_the_data_file_the_original_reads(tmp_path, kind):
    src = _torch_style(tmp_path)
    feed = {"input": models.random_feed((4, 64))}
    original_data = open(src + ".data", "rb").read()
    reference = _outputs(src, feed)
    _compress(kind, src, None if kind != "save" else src)
    assert open(src + ".data", "rb").read() == original_data
    assert sorted(os.listdir(str(tmp_path))) == ["model.onnx", "model.onnx.1.data", "model.onnx.data"]
    _check_valid(src, feed, reference if kind == "save" else _outputs(src, feed))
    # A second rewrite writes the first name again (the one the file no longer reads).
    _compress("save", src, src)
    assert sorted(os.listdir(str(tmp_path))) == ["model.onnx", "model.onnx.1.data", "model.onnx.data"]
    stored = onnx.load(src, load_external_data=False)
    assert {e.value for t in stored.graph.initializer for e in t.external_data if e.key == "location"} == {"model.onnx.data"}


def test_small_external_tensors_are_saved_inline(tmp_path):
    src = _torch_style(tmp_path, hidden=8)  # w1 64x8 floats (2 KiB) stays external; biases are inline
    dst = os.path.join(str(tmp_path), "copy.onnx")
    with kerf.load(src) as m:
        m.save(dst)
    stored = {t.name: t for t in onnx.load(dst, load_external_data=False).graph.initializer}
    assert stored["w1"].data_location == onnx.TensorProto.EXTERNAL
    assert stored["b1"].data_location == onnx.TensorProto.DEFAULT and stored["b2"].data_location == onnx.TensorProto.DEFAULT


def test_rewrites_keep_the_mode_of_the_file_they_replace(tmp_path):
    src = _torch_style(tmp_path)
    os.chmod(src, 0o600)
    kerf.prune(src, sparsity=0.5)
    assert os.stat(src).st_mode & 0o777 == 0o600
    # The new data file (model.onnx.1.data) takes the model's mode: a private model's weights stay private.
    assert os.stat(src + ".1.data").st_mode & 0o777 == 0o600
    assert not [n for n in os.listdir(str(tmp_path)) if ".kerf-" in n]


def test_killed_in_place_rewrites_leave_no_temporary_file_and_a_loadable_model(tmp_path):
    src = _torch_style(tmp_path, hidden=2048)  # ~1 MB of weights: the rewrite takes a while
    feed = {"input": models.random_feed((2, 64))}
    script = (f"import kerf\nfor _ in range(1000): kerf.prune({src!r}, sparsity=0.5)\n")
    env = dict(os.environ)
    rng = np.random.default_rng(0)
    for _ in range(8):
        p = subprocess.Popen([sys.executable, "-c", script], env=env)
        time.sleep(float(rng.uniform(0.3, 1.5)))
        p.kill()
        p.wait()
        # A kill inside the final rename can leave that one temporary name (a fatal signal may
        # abort the rename); the model stays loadable and the next rewrite removes the name.
        assert len([n for n in os.listdir(str(tmp_path)) if ".kerf-" in n]) <= 1
        assert _outputs(src, feed).shape == (2, 10)
    kerf.prune(src, sparsity=0.5)
    assert not [n for n in os.listdir(str(tmp_path)) if ".kerf-" in n]
    assert _outputs(src, feed).shape == (2, 10)


def test_external_data_that_is_a_fifo_is_refused_without_waiting(tmp_path):
    model = models.mlp(in_features=4, hidden=4, classes=2)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = os.path.join(str(tmp_path), "fifo.onnx")
    onnx.save_model(model, path, save_as_external_data=False)  # writes weights.bin through the helper
    os.remove(os.path.join(str(tmp_path), "weights.bin"))
    os.mkfifo(os.path.join(str(tmp_path), "weights.bin"))
    code = f"import kerf\ntry:\n    kerf.load({path!r})\nexcept kerf.KerfError as e:\n    print(e.status.name, e.message)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("IO ") and "not a regular file" in result.stdout


def test_links_that_leave_the_model_directory_are_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10000, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    model = models.mlp(in_features=4, hidden=4, classes=2)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = str(folder / "m.onnx")
    onnx.save_model(model, path)
    data = (folder / "weights.bin").read_bytes()
    (folder / "weights.bin").unlink()
    os.symlink(str(secret), str(folder / "weights.bin"))
    with pytest.raises(kerf.KerfError) as e:
        kerf.load(path)
    assert e.value.status == kerf.Status.INVALID_MODEL and "outside the model's directory" in e.value.message
    # A link that stays inside the folder is followed.
    (folder / "weights.bin").unlink()
    (folder / "real.bin").write_bytes(data)
    os.symlink("real.bin", str(folder / "weights.bin"))
    with kerf.load(path) as m:
        assert m.session(threads=1).run({"input": models.random_feed((1, 4))})["probs"].shape == (1, 2)


@pytest.mark.parametrize("offset,length", [("9223372036854775807", "64"), ("0", "9223372036854775807"), ("-1", "4")])
def test_external_ranges_that_overflow_are_refused(tmp_path, offset, length):
    model = models.mlp(in_features=4, hidden=4, classes=2)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = os.path.join(str(tmp_path), "m.onnx")
    onnx.save_model(model, path)
    stored = onnx.load(path, load_external_data=False)
    for entry in stored.graph.initializer[0].external_data:
        if entry.key == "offset":
            entry.value = offset
        if entry.key == "length":
            entry.value = length
    with open(path, "wb") as f:
        f.write(stored.SerializeToString())
    with pytest.raises(kerf.KerfError) as e:
        kerf.load(path)
    assert e.value.status == kerf.Status.INVALID_MODEL


def test_a_large_external_tensor_costs_its_own_size_once(tmp_path):
    """256 MB of external weights: loading reads each tensor's slice straight into the tensor
    (no whole-file read, no second copy), so peak memory grows by about the tensor's size."""
    count = 64 * 1024 * 1024  # 256 MB of float32
    with open(tmp_path / "big.onnx.data", "wb") as f:
        chunk = np.ones(1 << 22, np.float32).tobytes()
        for _ in range(count // (1 << 22)):
            f.write(chunk)
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[count], data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", "big.onnx.data"), ("offset", "0"), ("length", str(count * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = onnx.helper.make_graph([onnx.helper.make_node("Shape", ["w"], ["s"])], "g", [],
                                   [onnx.helper.make_tensor_value_info("s", onnx.TensorProto.INT64, [1])], [w])
    path = str(tmp_path / "big.onnx")
    onnx.save(onnx.helper.make_model(graph, ir_version=8, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    code = (
        "import kerf\n"
        "def peak():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) * 1024\n"
        f"before = peak()\nmodel = kerf.load({path!r})\n"
        "print(model.session(threads=1).run({})['s'][0], peak() - before)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shape, grown = map(int, result.stdout.split())
    assert shape == count
    assert grown <= 1.2 * count * 4, f"loading grew peak memory by {grown / (count * 4):.2f}x the tensor"
