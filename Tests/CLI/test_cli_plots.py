"""`--plot FILE.svg` of kerf sensitivity, quantize and train: a well-formed SVG document whose
lines, points and bars carry exactly the numbers of the command's JSON report; a name not
ending in .svg, or a chart without its data, is refused before any work."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest

from cli import blobs, kerf, models

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(in_features=16, hidden=32, classes=3), path)
    x, y = blobs()
    np.savez(tmp_path / "data.npz", input=x, labels=y)
    np.savez(tmp_path / "train.npz", input=x[:200], y=y[:200])
    np.savez(tmp_path / "valid.npz", input=x[200:], y=y[200:])
    return path


def series(svg_path):
    """{series name: [(x text, y value) per point]} from the points' tooltips, in drawing order."""
    root = ET.parse(svg_path).getroot()
    assert root.tag == SVG + "svg"
    found = {}
    for group in root.iter(SVG + "g"):
        name = group.get("data-name")
        assert len(group.findall(SVG + "polyline")) == 1
        points = []
        for circle in group.findall(SVG + "circle"):
            title = circle.find(SVG + "title").text
            assert title.startswith(name + " ")
            x, y = title[len(name) + 1:].rsplit(": ", 1)
            points.append((x, float(y)))
        assert len(group.find(SVG + "polyline").get("points").split()) == len(points)
        found[name] = points
    return found


def test_sensitivity_plot_has_a_line_per_weight_with_the_tables_accuracies(tmp_path, mlp):
    svg = tmp_path / "curves.svg"
    result = kerf("sensitivity", mlp, "--data", tmp_path / "data.npz", "--levels", "0.25,0.5,0.9",
                  "--json", tmp_path / "table.json", "--plot", svg)
    assert result.returncode == 0, result.stderr
    table = json.load(open(tmp_path / "table.json"))
    lines = series(svg)
    tensors = list(dict.fromkeys(row["tensor"] for row in table["rows"]))
    assert list(lines) == tensors and len(tensors) == 2
    for tensor in tensors:
        rows = [row for row in table["rows"] if row["tensor"] == tensor]
        assert [x for x, _ in lines[tensor]] == ["25%", "50%", "90%"]
        assert len(lines[tensor]) == len(rows)
        np.testing.assert_allclose([y for _, y in lines[tensor]], [row["accuracy"] for row in rows], atol=5e-5)
    text = svg.read_text()
    assert "unpruned" in text and "accuracy" in text and "sparsity of the weight" in text


def test_sensitivity_plot_without_labels_draws_relative_error(tmp_path, mlp):
    x, _ = blobs()
    np.savez(tmp_path / "unlabelled.npz", input=x[:64])
    svg = tmp_path / "error.svg"
    result = kerf("sensitivity", mlp, "--data", tmp_path / "unlabelled.npz", "--json", tmp_path / "table.json", "--plot", svg)
    assert result.returncode == 0, result.stderr
    table = json.load(open(tmp_path / "table.json"))
    lines = series(svg)
    assert sum(len(points) for points in lines.values()) == len(table["rows"]) == 6
    for row in table["rows"]:
        point = dict(lines[row["tensor"]])[f"{row['level'] * 100:g}%"]
        assert point == pytest.approx(row["relative_error"], abs=5e-5)
    assert "relative error" in svg.read_text() and "unpruned" not in svg.read_text()


def test_quantize_plot_has_a_bar_per_node_with_its_sqnr(tmp_path, mlp):
    svg = tmp_path / "sqnr.svg"
    result = kerf("quantize", mlp, "-o", tmp_path / "int8.onnx", "--mode", "static", "--calibration", tmp_path / "data.npz",
                  "--report", tmp_path / "report.json", "--plot", svg)
    assert result.returncode == 0, result.stderr
    report = json.load(open(tmp_path / "report.json"))
    bars = ET.parse(svg).getroot().findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == len(report["nodes"]) == 2
    for bar, node in zip(bars, report["nodes"]):
        assert bar.get("data-name") == node["name"]
        title = bar.find(SVG + "title").text
        assert float(title.rsplit(": ", 1)[1]) == pytest.approx(node["sqnr_db"], abs=0.05)
        assert float(bar.get("width")) > 0


def test_train_plot_draws_losses_and_validation_accuracy_per_epoch(tmp_path, mlp):
    svg = tmp_path / "train.svg"
    result = kerf("train", mlp, "--data", tmp_path / "train.npz", "--validation", tmp_path / "valid.npz", "--output", "probs",
                  "--probabilities", "--optimizer", "adam", "--lr", "0.01", "--epochs", 4, "--batch-size", 16,
                  "--init", "xavier-uniform", "--report", tmp_path / "report.json", "-o", tmp_path / "trained.onnx", "--plot", svg)
    assert result.returncode == 0, result.stderr
    epochs = json.load(open(tmp_path / "report.json"))["epochs"]
    lines = series(svg)
    assert list(lines) == ["training loss", "validation loss", "validation accuracy"]
    for name, key in [("training loss", "loss"), ("validation loss", "validation_loss"),
                      ("validation accuracy", "validation_accuracy")]:
        assert [x for x, _ in lines[name]] == ["1", "2", "3", "4"]
        np.testing.assert_allclose([y for _, y in lines[name]], [e[key] for e in epochs], rtol=1e-3, atol=5e-5)


def test_train_plot_without_validation_has_only_the_training_loss(tmp_path, mlp):
    svg = tmp_path / "train.svg"
    result = kerf("train", mlp, "--data", tmp_path / "train.npz", "--output", "probs", "--probabilities",
                  "--epochs", 2, "-o", tmp_path / "trained.onnx", "--plot", svg)
    assert result.returncode == 0, result.stderr
    lines = series(svg)
    assert list(lines) == ["training loss"] and len(lines["training loss"]) == 2
    assert "accuracy" not in svg.read_text()


@pytest.mark.parametrize("args, needle", [
    (["sensitivity", "{model}", "--data", "{dir}/data.npz", "--plot", "{dir}/curves.png"], "ending in .svg"),
    (["quantize", "{model}", "-o", "{dir}/q.onnx", "--plot", "{dir}/sqnr.svg"], "--calibration"),
    (["train", "{model}", "--data", "{dir}/train.npz", "--output", "probs", "--probabilities", "--plot", "{dir}/t.pdf"], "ending in .svg"),
])
def test_plot_errors_are_one_line_before_any_work(tmp_path, mlp, args, needle):
    original = mlp.read_bytes()
    result = kerf(*[a.format(model=mlp, dir=tmp_path) for a in args])
    assert result.returncode != 0 and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("kerf: ")
    assert mlp.read_bytes() == original
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "curves.png").exists()
