"""report.plot() of kerf.sensitivity, kerf.quantize and kerf.train: the figures hold the reports'
numbers, save as valid SVG, and without matplotlib plot() says how to install it."""

import json
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import onnx
import pytest

import kerf
import models


def is_figure(value):
    from matplotlib.figure import Figure
    return isinstance(value, Figure)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """A small MLP (input[N, 8] -> 16 -> logits[N, 3] -> probs) and labelled samples: (path, x, y)."""
    path = tmp_path_factory.mktemp("plots") / "mlp.onnx"
    onnx.save(models.mlp(in_features=8, hidden=16, classes=3, seed=3), str(path))
    rng = np.random.default_rng(4)
    return path, rng.standard_normal((96, 8)).astype(np.float32), rng.integers(0, 3, 96)


@pytest.fixture(scope="module")
def sensitivity(mlp):
    path, x, y = mlp
    return kerf.sensitivity(path, {"input": x}, labels=y, levels=(0.3, 0.6, 0.9))


@pytest.fixture(scope="module")
def quantized(mlp, tmp_path_factory):
    path, x, _ = mlp
    return kerf.quantize(path, tmp_path_factory.mktemp("quantized") / "int8.onnx", calibration={"input": x})


@pytest.fixture(scope="module")
def trained(mlp, tmp_path_factory):
    path, x, y = mlp
    return kerf.train(path, tmp_path_factory.mktemp("trained") / "trained.onnx", data={"input": x[:64], "y": y[:64]},
                      validation={"input": x[64:], "y": y[64:]}, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                      optimizer=kerf.optim.Adam(lr=1e-2), epochs=4, batch_size=16, threads=1)


def curves(report, metric):
    """{tensor: (levels, values)} of a sensitivity report, in the report's order."""
    out = {}
    for row in report.rows:
        levels, values = out.setdefault(row.tensor, ([], []))
        levels.append(row.level)
        values.append(row[metric])
    return out


def test_reports_stay_dicts_read_by_attribute_with_plain_nested_reports(sensitivity, quantized, trained):
    for report, kind in ((sensitivity, kerf.SensitivityReport), (quantized, kerf.QuantizeReport),
                         (trained, kerf.TrainReport)):
        assert type(report) is kind and isinstance(report, kerf.Report) and isinstance(report, dict)
        assert json.loads(json.dumps(report)) == report
    assert type(sensitivity.rows[0]) is kerf.Report and sensitivity.rows[0].tensor == sensitivity.rows[0]["tensor"]
    assert type(quantized.agreement) is kerf.Report and quantized.nodes[0].sqnr_db == quantized["nodes"][0]["sqnr_db"]
    assert trained.epochs[-1].loss == trained["epochs"][-1]["loss"]


def test_sensitivity_plot_draws_accuracy_per_tensor_against_sparsity_and_the_baseline(sensitivity):
    expected = curves(sensitivity, "accuracy")
    assert list(expected) == ["w1", "w2"]
    figure = sensitivity.plot()
    assert is_figure(figure) and len(figure.axes) == 1
    axes = figure.axes[0]
    assert len(axes.lines) == len(expected) + 1  # one per tensor, then the unpruned accuracy
    for line, (tensor, (levels, values)) in zip(axes.lines, expected.items()):
        assert line.get_label() == tensor
        assert list(line.get_xdata()) == levels == [0.3, 0.6, 0.9]
        assert list(line.get_ydata()) == values
    baseline = axes.lines[-1]
    assert baseline.get_linestyle() == "--"
    assert list(baseline.get_ydata()) == [sensitivity.baseline_accuracy] * 2
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("sparsity", "accuracy")
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["w1", "w2", "unpruned model"]


def test_sensitivity_plot_of_other_metrics_and_without_labels(mlp, sensitivity):
    axes = sensitivity.plot(metric="cosine").axes[0]
    expected = curves(sensitivity, "cosine")
    assert len(axes.lines) == len(expected)  # no baseline off the accuracy axis
    assert [list(line.get_ydata()) for line in axes.lines] == [values for _, values in expected.values()]
    assert axes.get_ylabel() == "cosine"

    path, x, _ = mlp
    unlabelled = kerf.sensitivity(path, {"input": x}, levels=(0.5, 0.9))
    axes = unlabelled.plot().axes[0]
    expected = curves(unlabelled, "relative_error")
    assert axes.get_ylabel() == "relative error" and len(axes.lines) == len(expected) == 2
    assert [list(line.get_ydata()) for line in axes.lines] == [values for _, values in expected.values()]
    with pytest.raises(kerf.KerfError, match="no accuracy"):
        unlabelled.plot(metric="accuracy")
    with pytest.raises(kerf.KerfError, match="metric must be one of"):
        sensitivity.plot(metric="loss")


def test_sensitivity_legend_lists_the_most_sensitive_of_many_tensors():
    levels = (0.5, 0.9)
    rows = [{"tensor": f"w{i}", "level": level, "accuracy": 0.9 - level * i / 100, "relative_error": level * i}
            for i in range(30) for level in levels]
    report = kerf.SensitivityReport(rows=rows, levels=list(levels), samples=10, baseline_accuracy=0.9)
    axes = report.plot().axes[0]
    assert len(axes.lines) == 31
    legend = axes.get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == 21 and labels[-1] == "unpruned model"
    assert labels[:20] == [f"w{i}" for i in range(29, 9, -1)]  # lowest accuracy at 90% first
    assert "20 most sensitive of 30" in legend.get_title().get_text()


def test_quantize_plot_is_one_labelled_bar_of_sqnr_per_node_in_graph_order(quantized):
    nodes = quantized.nodes
    assert [node.name for node in nodes] == ["fc1", "fc2"] and all(node.sqnr_db > 0 for node in nodes)
    axes = quantized.plot().axes[0]
    bars = axes.patches
    assert len(bars) == len(nodes)
    assert [bar.get_width() for bar in bars] == [node.sqnr_db for node in nodes]
    assert [bar.get_y() for bar in bars] == sorted(bar.get_y() for bar in bars) and axes.yaxis_inverted()  # first on top
    assert [tick.get_text() for tick in axes.get_yticklabels()] == ["fc1 (Gemm)", "fc2 (Gemm)"]
    assert [text.get_text() for text in axes.texts] == [f"{node.sqnr_db:.1f}" for node in nodes]
    assert axes.get_xlabel() == "SQNR (dB)"


def test_quantize_plot_needs_the_sqnr_that_data_give(mlp, tmp_path):
    uncalibrated = kerf.quantize(mlp[0], tmp_path / "int8.onnx")
    assert uncalibrated.nodes and all(node.sqnr_db is None for node in uncalibrated.nodes)
    with pytest.raises(kerf.KerfError, match="calibration data"):
        uncalibrated.plot()


def test_train_plot_draws_losses_and_validation_accuracy_on_a_second_axis(trained):
    epochs = trained.epochs
    assert len(epochs) == 4
    figure = trained.plot()
    assert len(figure.axes) == 2
    left, right = figure.axes
    assert len(left.lines) == 2 and len(right.lines) == 1
    for line in left.lines + right.lines:
        assert list(line.get_xdata()) == [e.epoch + 1 for e in epochs] == [1, 2, 3, 4]
    assert [line.get_label() for line in left.lines] == ["training loss", "validation loss"]
    assert list(left.lines[0].get_ydata()) == [e.loss for e in epochs]
    assert list(left.lines[1].get_ydata()) == [e.validation_loss for e in epochs]
    assert list(right.lines[0].get_ydata()) == [e.validation_accuracy for e in epochs]
    assert (left.get_xlabel(), left.get_ylabel(), right.get_ylabel()) == ("epoch", "loss", "validation accuracy")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["training loss", "validation loss", "validation accuracy"]


def test_train_plot_without_validation_is_the_training_loss_alone(mlp, tmp_path):
    path, x, y = mlp
    report = kerf.train(path, tmp_path / "trained.onnx", data={"input": x, "y": y},
                        loss=kerf.loss.CrossEntropy(output="logits", labels="y"), epochs=2, batch_size=32, threads=1)
    figure = report.plot()
    assert len(figure.axes) == 1 and len(figure.axes[0].lines) == 1
    assert list(figure.axes[0].lines[0].get_ydata()) == [e.loss for e in report.epochs]


@pytest.mark.parametrize("name", ["sensitivity", "quantized", "trained"])
def test_plot_with_a_path_saves_that_format(name, request, tmp_path):
    report = request.getfixturevalue(name)
    figure = report.plot(tmp_path / f"{name}.svg")
    assert is_figure(figure)
    root = ElementTree.parse(tmp_path / f"{name}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 10
    report.plot(str(tmp_path / f"{name}.png"))
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_draw_plain_dicts_read_from_json(sensitivity, quantized, trained, tmp_path):
    for draw, report in ((kerf.plots.sensitivity, sensitivity), (kerf.plots.quantization, quantized),
                         (kerf.plots.training, trained)):
        plain = json.loads(json.dumps(report))
        assert is_figure(draw(plain, tmp_path / "plain.svg"))


def test_without_matplotlib_plot_says_how_to_install_it(monkeypatch, sensitivity, quantized, trained):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for report in (sensitivity, quantized, trained):
        with pytest.raises(ImportError, match="pip install matplotlib"):
            report.plot()
