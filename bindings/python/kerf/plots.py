"""Figures of Kerf's reports, drawn with matplotlib when it is installed.

Each function takes a report as the library returns it (a kerf Report, or the same JSON read
with json.load), returns a matplotlib.figure.Figure and, given `path`, also saves it there in
the format its extension names (.svg, .png, .pdf, ...). Figures are made without pyplot: no
GUI backend, no global figure state, nothing to close.
"""

import math

from .errors import KerfError, Status

_METRICS = {"accuracy": "accuracy", "relative_error": "relative error", "max_abs_error": "max abs error",
            "cosine": "cosine"}
_MARKERS = "osv^D<>ph*"
_LEGEND_ENTRIES = 20  # beyond this the legend lists the most sensitive tensors only


def _figure(**options):
    try:
        import matplotlib  # noqa: F401 - fails first, even when a submodule is cached
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot() needs matplotlib: pip install matplotlib") from error
    return Figure(layout="constrained", **options)


def _finish(figure, path):
    if path is not None:
        figure.savefig(path)
    return figure


def _number(value):
    return math.nan if value is None else float(value)


def sensitivity(report, path=None, *, metric=None):
    """kerf.sensitivity's report: one line per tensor of `metric` against sparsity level.

    metric: "accuracy", "relative_error", "max_abs_error" or "cosine"; None picks accuracy when
    the report has accuracy values (it was given labels), else relative_error. Lines are labelled
    with the tensor names, in the report's order; with more than 20 tensors the legend lists the
    20 most sensitive (the worst value at the highest level). On the accuracy axis the unpruned
    model's accuracy is a dashed horizontal line. The x axis is "sparsity".
    """
    rows = report["rows"]
    has_accuracy = any(row.get("accuracy") is not None for row in rows)
    if metric is None:
        metric = "accuracy" if has_accuracy else "relative_error"
    if metric not in _METRICS:
        raise KerfError(Status.INVALID_ARGUMENT,
                        f"metric must be one of {', '.join(map(repr, _METRICS))}, got {metric!r}")
    if metric == "accuracy" and not has_accuracy:
        raise KerfError(Status.INVALID_ARGUMENT, "the report has no accuracy: run sensitivity with labels")
    curves = {}
    for row in rows:
        levels, values = curves.setdefault(row["tensor"], ([], []))
        levels.append(float(row["level"]))
        values.append(_number(row.get(metric)))

    figure = _figure(figsize=(7.5, 4.5))
    axes = figure.add_subplot()
    lines = []
    for index, (tensor, (levels, values)) in enumerate(curves.items()):
        levels, values = zip(*sorted(zip(levels, values), key=lambda point: point[0]))
        # The default cycle has 10 colours; a marker per ten keeps 100 tensors apart.
        lines += axes.plot(levels, values, marker=_MARKERS[index // 10 % len(_MARKERS)], label=tensor)
    extra = []
    baseline = report.get("baseline_accuracy")
    if metric == "accuracy" and baseline is not None:
        extra.append(axes.axhline(baseline, color="gray", linestyle="--", linewidth=1, label="unpruned model"))
    axes.set_xlabel("sparsity")
    axes.set_ylabel(_METRICS[metric])
    axes.set_title(f"sensitivity: each tensor pruned alone ({report.get('samples', '?')} samples)")
    axes.grid(True, alpha=0.3)
    if lines:
        shown, title = lines, None
        if len(lines) > _LEGEND_ENTRIES:
            worse_is_lower = metric in ("accuracy", "cosine")
            last = {line: line.get_ydata()[-1] for line in lines}  # at the highest level: points are sorted
            ranked = sorted((line for line in lines if not math.isnan(last[line])),
                            key=lambda line: last[line], reverse=not worse_is_lower)
            shown = ranked[:_LEGEND_ENTRIES]
            title = f"{len(shown)} most sensitive of {len(lines)}"
        handles = shown + extra
        axes.legend(handles=handles, title=title, fontsize="small" if len(handles) <= 10 else "x-small",
                    loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _finish(figure, path)


def quantization(report, path=None):
    """kerf.quantize's report: a horizontal bar per quantized node of its output SQNR in dB
    (signal-to-quantization-noise ratio against the float model; higher is better), nodes from
    top to bottom in the report's (graph) order, each labelled with its name and op type and
    its value. Nodes without a measured SQNR get no bar and "n/a". Raises KerfError when no node
    has one (quantize was given no calibration data)."""
    nodes = report["nodes"]
    if nodes and all(node.get("sqnr_db") is None for node in nodes):
        raise KerfError(Status.INVALID_ARGUMENT,
                        "the report has no per-node SQNR: quantize with calibration data")
    values = [_number(node.get("sqnr_db")) for node in nodes]
    names = [f"{node['name']} ({node['op_type']})" for node in nodes]

    figure = _figure(figsize=(7, max(2.5, 1.2 + 0.3 * len(nodes))))
    axes = figure.add_subplot()
    bars = axes.barh(range(len(nodes)), values, color="tab:blue")
    axes.set_yticks(range(len(nodes)), names)
    axes.set_ylim(max(len(nodes), 1) - 0.5, -0.5)  # first node on top; a NaN bar keeps its row
    for bar, value in zip(bars, values):  # bar_label leaves a NaN bar unlabelled
        axes.annotate("n/a" if math.isnan(value) else f"{value:.1f}", (0 if math.isnan(value) else value,
                      bar.get_y() + bar.get_height() / 2), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize="small")
    axes.margins(x=0.12)
    axes.set_xlabel("SQNR (dB)")
    axes.set_title(" ".join(filter(None, ["per-node SQNR,", report.get("mode"), "int8"])))
    axes.grid(True, axis="x", alpha=0.3)
    return _finish(figure, path)


def training(report, path=None):
    """kerf.train's report: training loss (the epoch's mean batch loss) and, with validation
    data, validation loss per epoch on the left axis; validation accuracy, when the report has
    it, on a second axis at the right. The x axis counts epochs from 1, as the progress bar and
    the CLI do (the report's "epoch" + 1)."""
    epochs = report["epochs"]
    x = [epoch["epoch"] + 1 for epoch in epochs]

    def series(key):
        values = [epoch.get(key) for epoch in epochs]
        return [_number(v) for v in values] if any(v is not None for v in values) else None

    figure = _figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    axes.plot(x, series("loss") or [math.nan] * len(x), marker="o", color="tab:blue", label="training loss")
    validation_loss = series("validation_loss")
    if validation_loss is not None:
        axes.plot(x, validation_loss, marker="o", color="tab:orange", label="validation loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    handles = list(axes.lines)
    accuracy = series("validation_accuracy")
    if accuracy is not None:
        right = axes.twinx()
        handles += right.plot(x, accuracy, marker="s", linestyle=":", color="tab:green", label="validation accuracy")
        right.set_ylabel("validation accuracy")
    from matplotlib.ticker import MaxNLocator
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Below the axes: "best" inside would weigh one axis's lines only and cover the other's.
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small", frameon=False)
    axes.set_title(f"training: {report.get('steps', '?')} steps")
    return _finish(figure, path)


__all__ = ["quantization", "sensitivity", "training"]
