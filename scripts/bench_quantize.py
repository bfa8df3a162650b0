#!/usr/bin/env python3
"""Quantization: file size, accuracy and latency of int8 files made by Kerf (kerf.quantize) and by
ONNX Runtime's own tools (onnxruntime.quantization), each file run by both engines. Part of
`make bench`; also standalone:

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/bench_quantize.py [--runs 30] [--out FILE]

Forms per model: float; Kerf dynamic; Kerf static (U8S8, minmax; for BERT also the best of
percentile / SmoothQuant when it clearly helps); ORT quantize_dynamic (QInt8 weights, per channel);
ORT quantize_static (QDQ, QUInt8 activations, QInt8 per-channel weights, MinMax), both on the float
file as it is (no quant_pre_process: its MatMul + Add -> Gemm fusion makes per-channel
quantize_static fail on the digits model, onnxruntime#24815). Kerf and ONNX Runtime calibrate on
the same batches. Accuracy is measured with each engine, against labels (digits) or against ONNX
Runtime's output on the float file. Latency: 1 intra-op thread, median of --runs runs after
warm-up, the two engines taking turns (bench_prune.measure); a measurement that would take more
than MEASUREMENT_BUDGET_S uses fewer runs and says so. A Kerf or ONNX Runtime failure on a file
is reported in its cells instead of stopping the section.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from bench_prune import big_mlp, measure  # noqa: E402

WARMUP = 3
# A latency measurement (both engines, one file, one batch) whose runs would take longer than
# this many seconds uses fewer runs (at least MIN_RUNS), marked in the table: keeps `make bench`
# bounded if an int8 path is unexpectedly slow.
MEASUREMENT_BUDGET_S = 8.0
MIN_RUNS = 7
# A measurement whose runs are fast takes more of them, as many as fit in FAST_BUDGET_S (up to
# FAST_RUNS): the medians of µs-scale runs move less.
FAST_BUDGET_S = 0.5
FAST_RUNS = 1000
# Percentile or SmoothQuant joins the BERT table only if its (1 - cosine) is at most this fraction of minmax's.
CLEAR_GAIN = 0.7
MLP_EVALUATION = 256  # inputs for the MLP cosine
CNN_EVALUATION = 128  # inputs for the CNN top-1 agreement


# MARK: - Engines

def error_text(error: BaseException, limit: int = 90) -> str:
    import kerf
    text = str(error) if isinstance(error, kerf.KerfError) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split()).replace("|", "\\|")
    return "error: " + (text if len(text) <= limit else text[:limit - 1] + "…")


def ort_session(path: str):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


class KerfRunner:
    def __init__(self, path: str):
        import kerf
        with kerf.load(path) as model:
            self.session = model.session(threads=1)

    def __call__(self, feeds):
        return self.session.run(feeds)

    def close(self):
        self.session.close()


def open_engines(path: str) -> dict:
    """{"kerf": runner or error text, "ort": runner or error text}."""
    engines = {}
    for name, opener in (("kerf", KerfRunner), ("ort", ort_session)):
        try:
            engines[name] = opener(path)
        except Exception as error:  # noqa: BLE001 - reported in the table
            engines[name] = error_text(error)
    return engines


def close_engines(engines: dict) -> None:
    if isinstance(engines.get("kerf"), KerfRunner):
        engines["kerf"].close()


def run_batches(runner, batches: list[dict], output: str) -> np.ndarray:
    return np.concatenate([runner(feeds)[output] for feeds in batches])


# MARK: - Metrics

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def accuracy_metric(labels):
    return lambda out: f"{np.mean(out == labels):.4f}"


def agreement_metric(reference):
    return lambda out: f"{np.mean(out.argmax(1) == reference.argmax(1)):.4f}"


def cosine_metric(reference):
    return lambda out: f"{cosine(out, reference):.6f}"


# MARK: - Quantizers

def ort_reader(batches: list[dict]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

        def rewind(self):
            self.items = iter(batches)

    return Reader()


def ort_dynamic(src: str, dst: str, calibration) -> str:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
    return dst


def ort_static(src: str, dst: str, calibration) -> str:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    quantize_static(src, dst, ort_reader(calibration), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax)
    return dst


def kerf_quantizer(**options):
    def run(src: str, dst: str, calibration) -> str:
        import kerf
        kerf.quantize(src, dst, calibration=calibration, **options)
        return dst
    return run


# MARK: - One model

def model_table(title: str, work: str, stem: str, src: str, forms: list, calibration: list[dict],
                evaluation: list[dict], output: str, metric_name: str, metric_from_reference, batches: dict,
                runs: int, notes=()) -> list[str]:
    """forms: (label, quantizer or None for the float file, or a str: the reason the row is skipped).
    metric_from_reference(float output of ONNX Runtime) -> metric(output) -> str.
    batches: {batch size: feeds} for latency."""
    float_size = os.path.getsize(src)
    lines = [f"### {title}", "",
             f"| form | file MB | % of float | {metric_name} (ORT) | {metric_name} (Kerf) | batch | Kerf ms | ORT ms "
             "| Kerf/ORT | Kerf speedup | ORT speedup |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base, metric, capped = {}, None, False
    for label, quantizer in forms:
        if isinstance(quantizer, str):
            lines.append(f"| {label} | {quantizer} | - | - | - | - | - | - | - | - | - |")
            continue
        path, clock = src, time.perf_counter()
        if quantizer is not None:
            path = os.path.join(work, f"{stem}_{label.lower().replace(' ', '_').replace('/', '_')}.onnx")
            try:
                path = quantizer(src, path, calibration)
            except Exception as error:  # noqa: BLE001
                lines.append(f"| {label} | {error_text(error)} | - | - | - | - | - | - | - | - | - |")
                print(lines[-1], file=sys.stderr, flush=True)
                continue
        made = time.perf_counter()
        engines = open_engines(path)
        opened = time.perf_counter()
        if metric is None:  # the float file comes first: ONNX Runtime's output on it is the reference
            metric = metric_from_reference(run_batches(engines["ort"], evaluation, output))
        scores = {}
        for name, runner in engines.items():
            try:
                scores[name] = runner if isinstance(runner, str) else metric(run_batches(runner, evaluation, output))
            except Exception as error:  # noqa: BLE001
                scores[name] = error_text(error)
        size = os.path.getsize(path)
        scored = time.perf_counter()
        for batch, feeds in batches.items():
            runners, cells = {}, {}
            for name, runner in engines.items():
                if isinstance(runner, str):  # the session failed: its error is in this row's accuracy cell
                    cells[name] = f"error: see {metric_name} ({'Kerf' if name == 'kerf' else 'ORT'})"
                    continue
                try:
                    runner(feeds)
                    runners[name] = (lambda r: lambda: r(feeds))(runner)
                except Exception as error:  # noqa: BLE001
                    cells[name] = error_text(error)
            ms, used = timed(runners, runs)
            mark = "" if used >= runs else f" ({used} runs)"
            capped |= used < runs
            for name, value in ms.items():
                cells[name] = f"{value:.3f}{mark}"
            if quantizer is None:
                base[batch] = ms
            ratio = f"{ms['kerf'] / ms['ort']:.2f}" if len(ms) == 2 else "-"
            speedups = [f"{base[batch][name] / ms[name]:.2f}x" if name in ms and name in base.get(batch, {}) else "-"
                        for name in ("kerf", "ort")]
            lines.append(f"| {label} | {size / 1e6:.2f} | {100 * size / float_size:.0f}% | {scores['ort']} | {scores['kerf']} "
                         f"| {batch} | {cells['kerf']} | {cells['ort']} | {ratio} | {speedups[0]} | {speedups[1]} |")
            print(lines[-1], file=sys.stderr, flush=True)
        close_engines(engines)
        print(f"{stem} {label}: quantize {made - clock:.1f} s, sessions {opened - made:.1f} s, accuracy {scored - opened:.1f} s, "
              f"latency {time.perf_counter() - scored:.1f} s", file=sys.stderr, flush=True)
    if capped:
        notes = [*notes, f"Rows marked (N runs) were too slow for {runs} runs within {MEASUREMENT_BUDGET_S:.0f} s "
                         "and use the median of N runs."]
    return lines + [""] + [line for note in notes for line in (note, "")]


def timed(runners: dict, runs: int) -> tuple[dict, int]:
    """bench_prune.measure with the run count lowered if one turn of all runners is slow. Each
    runner has run once already (model_table checks that it works): that run, the timed turn here
    and measure's own warm-up make WARMUP warm-up runs."""
    if not runners:
        return {}, runs
    start = time.perf_counter()
    for run in runners.values():
        run()
    turn = time.perf_counter() - start
    if turn * runs <= MEASUREMENT_BUDGET_S:
        used = max(runs, min(FAST_RUNS, int(FAST_BUDGET_S / max(turn, 1e-9))))
    else:
        used = max(MIN_RUNS, int(MEASUREMENT_BUDGET_S / turn))
    return measure(runners, used, warmup=WARMUP - 2), used


# MARK: - The four models

FORMS = [("Kerf dynamic", kerf_quantizer(mode="dynamic")), ("Kerf static", kerf_quantizer(mode="static")),
         ("ORT dynamic", ort_dynamic), ("ORT static", ort_static)]


def digits(work: str, runs: int, digits_dir: str | None = None) -> list[str]:
    if digits_dir is None:
        digits_dir = work
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_digits.py"), work], check=True,
                       stdout=subprocess.DEVNULL)
    src = os.path.join(work, "digits.onnx")
    shutil.copyfile(os.path.join(digits_dir, "digits_mlp.onnx"), src)
    data = np.load(os.path.join(digits_dir, "digits_test.npz"))
    x, y = data["x"], data["y"]
    calibration = [{"X": x[i:i + 32]} for i in range(0, 256, 32)]
    return model_table(f"Digits MLP (scikit-learn, 64-64-10; accuracy on the {len(y)} test samples)", work, "digits", src,
                       [("float", None), *FORMS], calibration, [{"X": x}], "label", "accuracy",
                       lambda _: accuracy_metric(y), {b: {"X": x[:b]} for b in (1, 32)}, runs)


def gaussian(shape: tuple, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def mlp(work: str, runs: int) -> list[str]:
    import onnx
    src = os.path.join(work, "mlp.onnx")
    onnx.save(big_mlp(), src)
    x, calibration = gaussian((MLP_EVALUATION, 1024), 7), gaussian((256, 1024), 8)
    return model_table(f"MLP 1024-4096-4096-1000 (MatMul + Add + Relu; cosine over {MLP_EVALUATION} inputs)", work, "mlp",
                       src, [("float", None), *FORMS], [{"x": calibration[i:i + 32]} for i in range(0, 256, 32)],
                       [{"x": x[i:i + 128]} for i in range(0, MLP_EVALUATION, 128)], "a2", "cosine", cosine_metric,
                       {b: {"x": x[:b]} for b in (1, 32)}, runs)


def cnn(work: str, runs: int) -> list[str]:
    import onnx

    import kerf
    from channel_models import resnet
    src = os.path.join(work, "cnn.onnx")
    model = resnet(seed=0)[0]
    onnx.save(model, src)
    x, calibration = gaussian((CNN_EVALUATION, 3, 32, 32), 7), gaussian((256, 3, 32, 32), 8)
    try:
        report = kerf.quantize(src, os.path.join(work, "cnn_dynamic_unused.onnx"), mode="dynamic")
        others = ", ".join(sorted({n.op_type for n in report.nodes})) or "nothing"
    except Exception as error:  # noqa: BLE001
        others = error_text(error)
    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    skip = f"skipped: dynamic mode never emits ConvInteger, so all {convs} Conv would stay float (it quantizes only: {others})"
    forms = [("float", None), (FORMS[0][0], skip), *FORMS[1:]]
    return model_table("ResNet-style CNN 3x32x32 (stem 32, stages 32/64/128 x 2 basic blocks, BN, GAP, Gemm; "
                       f"top-1 agreement over {CNN_EVALUATION} inputs)", work, "cnn", src, forms,
                       [{"x": calibration[i:i + 32]} for i in range(0, 256, 32)],
                       [{"x": x[i:i + 64]} for i in range(0, CNN_EVALUATION, 64)], model.graph.output[0].name,
                       "top-1 agreement", agreement_metric, {b: {"x": x[:b]} for b in (1, 32)}, runs)


def bert(work: str, runs: int) -> list[str]:
    import onnx

    import kerf
    import transformer_models as tm
    src = os.path.join(work, "bert.onnx")
    onnx.save(tm.bert_encoder(layers=2, hidden=256, heads=4), src)
    calibration = [tm.bert_feeds(2, 128, seed=k) for k in range(8)]
    evaluation = [tm.bert_feeds(8, 128, seed=100 + k) for k in range(2)]
    # The static variants, compared by the cosine kerf.quantize itself reports on the calibration data.
    variants = {"minmax": {}, "percentile": dict(method="percentile"), "SmoothQuant 0.5": dict(smooth_quant=0.5)}
    paths, reported = {}, {}
    for name, options in variants.items():
        paths[name] = os.path.join(work, f"bert_kerf_static_{name.split()[0].lower()}.onnx")
        try:
            reported[name] = kerf.quantize(src, paths[name], mode="static", calibration=calibration, **options).agreement.cosine
        except Exception as error:  # noqa: BLE001
            reported[name] = error_text(error)
    scored = {k: v for k, v in reported.items() if isinstance(v, float)}
    best = max((k for k in scored if k != "minmax"), key=scored.get, default=None)
    joins = best is not None and "minmax" in scored and 1 - scored[best] <= CLEAR_GAIN * (1 - scored["minmax"])

    def existing(name):
        def use(src, dst, calibration):
            if not isinstance(reported[name], float):
                raise RuntimeError(reported[name])
            return paths[name]
        return use

    forms = [("float", None), FORMS[0], ("Kerf static", existing("minmax"))]
    if joins:
        forms.append((f"Kerf static {best}", existing(best)))
    forms += FORMS[2:]
    summary = ", ".join(f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}" for k, v in reported.items())
    note = (f"Kerf static variants, cosine that `kerf.quantize` reports on its calibration data: {summary}. "
            + (f"{best} is shown as it cuts minmax's 1 - cosine by at least {1 - CLEAR_GAIN:.0%}." if joins else
               f"Neither alternative cuts minmax's 1 - cosine by {1 - CLEAR_GAIN:.0%} or more, so only minmax is shown."))
    return model_table("BERT-style encoder (2 layers, hidden 256, 4 heads, seq 128; cosine of last_hidden_state over "
                       f"{sum(len(f['input_ids']) for f in evaluation)} sequences)", work, "bert", src, forms, calibration,
                       evaluation, "last_hidden_state", "cosine", cosine_metric, {b: tm.bert_feeds(b, 128) for b in (1, 8)},
                       runs, notes=[note])


def section(runs: int, digits_dir: str | None = None) -> list[str]:
    """The markdown lines of the quantization section. digits_dir: a directory already holding
    train_digits.py's output (digits_mlp.onnx, digits_test.npz); None trains the model here."""
    import onnxruntime as ort

    import kerf
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs pre-processing advice
    start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="kerf-bench-quantize-")
    tables = []
    for build in (digits, mlp, cnn, bert):
        tables += build(work, runs, digits_dir) if build is digits else build(work, runs)
        print(f"quantization: {build.__name__} done at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - start
    lines = ["## Quantization", "",
             f"Produced by `python3 scripts/bench_quantize.py --runs {runs}` (part of `make bench`), Kerf {kerf.__version__},",
             f"ONNX Runtime {ort.__version__}. Kerf dynamic / static = `kerf.quantize(mode=\"dynamic\")` /",
             "`kerf.quantize(mode=\"static\")` (U8S8, minmax, per-channel weights). ORT dynamic =",
             "`onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, per_channel=True)`, ORT static =",
             "`quantize_static(QuantFormat.QDQ, activation QUInt8, weight QInt8, per_channel=True, MinMax)`, both with",
             "their default operator types, on the float file without `quant_pre_process`. Kerf and ONNX Runtime",
             "calibrate on the same batches: the first 256 test samples (digits), 256 other standard-normal inputs",
             "(MLP, CNN), in batches of 32; 8 batches of 2 sequences of 128 tokens (BERT). Every file runs in",
             "both engines: the accuracy columns give the same file run by ONNX Runtime (default graph",
             "optimizations) and by Kerf, against the labels (digits) or against ONNX Runtime's output on the",
             "float file (cosine over the whole output tensor, top-1 agreement). Latency: 1 intra-op thread,",
             f"median of {runs} runs (of more where runs are fast: as many as fit in {FAST_BUDGET_S} s, up to {FAST_RUNS})",
             f"after {WARMUP} warm-up runs, the two engines taking turns on the same inputs;",
             "speedups are against the same engine on the float file. A failure shows its error in the cell.",
             f"This section took {elapsed:.0f} s.", ""]
    return lines + tables


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    text = "\n".join(section(args.runs))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
