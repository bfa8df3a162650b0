#!/usr/bin/env python3
"""The zoo (bindings/python/tests/zoo.py) timed: Kerf next to ONNX Runtime on real exports, float
and int8, and what 30% channel pruning removes and saves.

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/bench_zoo.py [--rounds 5] [--block-seconds 0.15] [--out BENCHMARKS.md]

For every file of the zoo (CNNs in torchvision's architectures and Hugging Face transformers
models from small configs, each exported by TorchScript and by dynamo; exported on first use and
cached, see zoo.py) at batch 1 and 8, 1 thread:

- float: median latency of Kerf and of ONNX Runtime (default graph optimizations, sequential
  execution, intra_op_num_threads 1), and their ratio;
- int8: the file `kerf.quantize` writes (static, calibrated on zoo.calibration's images, for the
  CNNs; dynamic for the transformers), timed in Kerf and in ONNX Runtime; Kerf int8 / ORT int8
  and Kerf int8 / Kerf float;
- pruning: `kerf.prune(method="channel", sparsity=0.3, channel_multiple=16)` (zoo.PRUNE_*): the
  fraction of the prunable parameters
  removed (zoo.prunable_parameters, the count test_zoo.py uses) and ONNX Runtime's latency on the
  pruned file over its latency on the unpruned one.

Token models get 64 tokens (the exports' position tables hold 128, and dynamo's sequence axis is
bounded at 112); gpt2_past times a decoding step: 1 new token after 63 cached ones. Images are
224x224; the Whisper encoder's 80x200 features are fixed by the model.

Each file is measured in a child process of its own (a crash is a row, not the end of the table).
The five runners of a file (Kerf float, ORT float, Kerf int8, ORT int8, ORT pruned) take turns:
after warm-up runs, --rounds rounds in which each runner runs a block of runs in turn (the order
rotating round by round), a block as many runs as fit in --block-seconds (at least 2, at most
200), so that load from elsewhere on the shared machine hits every runner alike. Each latency is
the median of all of a runner's timed runs. Prints the BENCHMARKS.md section; with --out, writes
it into that file (replacing the section if present, else appending it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bindings" / "python"))
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))  # zoo.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import zoo  # noqa: E402

HEADING = "## Zoo: real exports"
BATCHES = (1, 8)
SEQUENCE = 64  # tokens of the token models
DECODE_PAST = 63  # gpt2_past: cached tokens before the one new token
WARMUP = {1: 3, 8: 2}
MIN_BLOCK, MAX_BLOCK = 2, 200
RUNNERS = ("kerf", "ort", "kerf_int8", "ort_int8", "ort_pruned")

# Rows listed under the table as surprising.
SLOW_KERF = 1.5  # Kerf float at least this many times ORT's
PRUNED_SLOWER = 1.05  # ORT on the pruned file at least this many times the unpruned latency


def feeds(name: str, batch: int) -> dict:
    spec = zoo.SPECS[name]
    if name == "gpt2_past":
        return zoo.inputs(name, batch, seed=0, sequence=1, past=DECODE_PAST)
    if spec.vocab:
        return zoo.inputs(name, batch, seed=0, sequence=SEQUENCE)
    return zoo.inputs(name, batch, seed=0)


# MARK: - Child: one file

def _ort_session(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _runner(engine: str, path):
    if engine == "kerf":
        import kerf

        model = kerf.load(str(path))
        session = model.session(threads=1)
        run = lambda f: session.run(f)  # noqa: E731
        run.keep = (model, session)
        return run
    session = _ort_session(path)
    return lambda f: session.run(None, f)


def _time_file(runners: dict, batch_feeds: dict, rounds: int, block_seconds: float) -> dict:
    """{batch: {runner: median ms}} and the timed runs per runner, the runners taking turns."""
    latency, runs = {}, {}
    for batch, f in batch_feeds.items():
        warm = {}
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(WARMUP[batch]):
                run(f)
            warm[name] = (time.perf_counter() - start) / WARMUP[batch]
        block = {name: max(MIN_BLOCK, min(MAX_BLOCK, int(block_seconds / max(seconds, 1e-6)))) for name, seconds in warm.items()}
        times = {name: [] for name in runners}
        order = list(runners)
        for r in range(rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                run = runners[name]
                for _ in range(block[name]):
                    start = time.perf_counter()
                    run(f)
                    times[name].append((time.perf_counter() - start) * 1000)
        latency[batch] = {name: statistics.median(t) for name, t in times.items()}
        runs[batch] = {name: len(t) for name, t in times.items()}
    return {"latency": latency, "runs": runs}


def child(name: str, exporter: str, path: str, work: str, rounds: int, block_seconds: float) -> dict:
    import kerf

    spec = zoo.SPECS[name]
    row = {"errors": {}}
    runners = {}
    for engine in ("kerf", "ort"):
        try:
            runners[engine] = _runner(engine, path)
        except Exception as error:  # noqa: BLE001 - a row, not the end of the table
            row["errors"][engine] = f"{type(error).__name__}: {error}"
    quantized = Path(work) / f"{name}-{exporter}.int8.onnx"
    start = time.perf_counter()
    try:
        if spec.kind == "cnn":
            kerf.quantize(path, str(quantized), mode="static", calibration=zoo.calibration(name))
        else:
            kerf.quantize(path, str(quantized), mode="dynamic")
        row["quantize_s"] = time.perf_counter() - start
        for engine in ("kerf", "ort"):
            try:
                runners[f"{engine}_int8"] = _runner(engine, quantized)
            except Exception as error:  # noqa: BLE001
                row["errors"][f"{engine}_int8"] = f"{type(error).__name__}: {error}"
    except Exception as error:  # noqa: BLE001
        row["errors"]["quantize"] = f"{type(error).__name__}: {error}"
    pruned = Path(work) / f"{name}-{exporter}.pruned.onnx"
    start = time.perf_counter()
    try:
        kerf.prune(path, str(pruned), method="channel", sparsity=zoo.PRUNE_SPARSITY, channel_multiple=zoo.PRUNE_CHANNEL_MULTIPLE)
        row["prune_s"] = time.perf_counter() - start
        before, after = zoo.prunable_parameters(path), zoo.prunable_parameters(pruned)
        row["prunable"], row["removed"] = before, 1 - after / before
        runners["ort_pruned"] = _runner("ort", pruned)
    except Exception as error:  # noqa: BLE001
        row["errors"]["prune"] = f"{type(error).__name__}: {error}"
    batch_feeds = {batch: feeds(name, batch) for batch in BATCHES}
    for runner_name in list(runners):  # a runner that cannot run these inputs leaves the turns
        try:
            for f in batch_feeds.values():
                runners[runner_name](f)
        except Exception as error:  # noqa: BLE001
            row["errors"][runner_name] = f"{type(error).__name__}: {error}"
            del runners[runner_name]
    row.update(_time_file(runners, batch_feeds, rounds, block_seconds))
    return row


# MARK: - Parent: every file, the table

def measure_file(entry, work: str, rounds: int, block_seconds: float) -> dict:
    args = [sys.executable, __file__, "--child", entry.name, entry.exporter, str(entry.path), work,
            "--rounds", str(rounds), "--block-seconds", str(block_seconds)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ZOO-BENCH ")]
    if done.returncode or not lines:
        tail = " | ".join((done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-3:])
        return {"died": f"the child process died (exit {done.returncode}): {tail}"}
    row = json.loads(lines[-1][len("ZOO-BENCH "):])
    row["latency"] = {int(b): v for b, v in row["latency"].items()}
    row["runs"] = {int(b): v for b, v in row["runs"].items()}
    return row


def geomean(values) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def _ms(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _ratio(a, b) -> str:
    return "–" if a is None or b is None else f"{a / b:.2f}"


def table(entries, rows) -> tuple[list[str], dict]:
    """The table's lines and the per-row ratios (for the geometric means and the notes)."""
    lines = ["| model | exporter | batch | Kerf ms | ORT ms | Kerf/ORT | Kerf int8 ms | ORT int8 ms | Kerf int8/ORT int8 "
             "| Kerf int8/float | pruned: prunable params removed | ORT pruned ms | ORT pruned/unpruned |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for entry in entries:
        row = rows[entry.id]
        if entry.path is None or "died" in row:
            why = f"not exported: {entry.error.splitlines()[0]}" if entry.path is None else row["died"]
            lines.append(f"| {entry.name} | {entry.exporter} | – | {why} |" + " |" * 9)
            continue
        removed = f"{row['removed']:.1%} of {row['prunable']:,}" if "removed" in row else "–"
        for batch in BATCHES:
            t = row["latency"][batch]
            k, o, ki, oi, op = (t.get(n) for n in RUNNERS)
            lines.append(f"| {entry.name} | {entry.exporter} | {batch} | {_ms(k)} | {_ms(o)} | {_ratio(k, o)} | {_ms(ki)} | "
                         f"{_ms(oi)} | {_ratio(ki, oi)} | {_ratio(ki, k)} | {removed} | {_ms(op)} | {_ratio(op, o)} |")
            ratios.append(dict(id=entry.id, kind=entry.kind, batch=batch,
                               float=k / o if k and o else None, int8_vs_ort=ki / oi if ki and oi else None,
                               int8_vs_float=ki / k if ki and k else None, pruned=op / o if op and o else None,
                               removed=row.get("removed")))
    return lines, ratios


def notes(entries, rows, ratios) -> list[str]:
    cnn = [r for r in ratios if r["kind"] == "cnn"]
    lines = [
        f"**Geometric mean Kerf/ORT, float: {geomean(r['float'] for r in cnn):.2f} over the {len(cnn)} CNN rows** "
        f"(the seven torchvision-architecture models, ViT/16 included), **{geomean(r['float'] for r in ratios):.2f} over all "
        f"{len(ratios)} rows**. Kerf int8 / Kerf float: {geomean(r['int8_vs_float'] for r in cnn):.2f} over the CNN rows "
        f"(static), {geomean(r['int8_vs_float'] for r in ratios if r['kind'] != 'cnn'):.2f} over the transformer rows "
        f"(dynamic). Kerf int8 / ORT int8 on the same file: {geomean(r['int8_vs_ort'] for r in cnn):.2f} (CNN rows), "
        f"{geomean(r['int8_vs_ort'] for r in ratios if r['kind'] != 'cnn'):.2f} (transformer rows).",
        "",
    ]
    slow = [r for r in ratios if r["float"] and r["float"] >= SLOW_KERF]
    int8_slower = [r for r in ratios if r["int8_vs_float"] and r["int8_vs_float"] > 1.0]
    pruned_slower = [r for r in ratios if r["pruned"] and r["pruned"] >= PRUNED_SLOWER]
    little = sorted({(r["id"], r["removed"]) for r in ratios if r["removed"] is not None and r["removed"] < 0.25})
    listed = lambda rs, key: ", ".join(f"{r['id']} b{r['batch']} ({r[key]:.2f})" for r in rs) or "none"  # noqa: E731
    lines += [
        f"- Kerf float at least {SLOW_KERF}x ONNX Runtime: {listed(slow, 'float')}.",
        f"- Kerf int8 slower than Kerf float: {listed(int8_slower, 'int8_vs_float')}.",
        f"- ONNX Runtime at least {PRUNED_SLOWER:.2f}x slower on the pruned file than on the unpruned one: "
        f"{listed(pruned_slower, 'pruned')}.",
        "- 30% channel pruning removes less than 25% of the prunable parameters (issue 19's target) on: "
        + (", ".join(f"{i} ({v:.1%})" for i, v in little) or "none") + ".",
    ]
    errors = [(entry.id, what, message) for entry in entries if entry.id in rows
              for what, message in rows[entry.id].get("errors", {}).items()]
    if errors:
        lines.append("- Failures (– in the table): " + "; ".join(f"{i} {w}: {m.splitlines()[0][:200]}" for i, w, m in errors) + ".")
    return lines + [""]


# MARK: - Section

def _cpu() -> str:
    """lscpu's model name (/proc/cpuinfo's where lscpu is missing) and the avx512_vnni and avx2 flags."""
    from bench import cpu_name
    name = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")), None)
    except (OSError, subprocess.CalledProcessError):
        pass
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    have = " and ".join(f"`{flag}`" if flag in flags else f"no `{flag}`" for flag in ("avx512_vnni", "avx2"))
    return f"{os.cpu_count()}-core \"{name or cpu_name()}\" (lscpu's model name; flags {have}"


def _command(argv) -> str:
    words = []
    for variable in ("KERF_LIBRARY", "KERF_ZOO_DIR"):
        value = os.environ.get(variable, "")
        if value:
            try:
                value = os.path.relpath(value, REPO) if Path(value).resolve().is_relative_to(REPO) else value
            except ValueError:
                pass
            words.append(f"{variable}={value}")
    return " ".join(words + ["python3 scripts/bench_zoo.py"] + list(argv))


def _commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], check=True,
                               capture_output=True, text=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def section(rounds: int, block_seconds: float, argv, models=zoo.MODELS) -> list[str]:
    import onnxruntime

    import kerf

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    entries = zoo.export_all(models=models)
    export_seconds = time.perf_counter() - started
    rows, loads = {}, [load_before]
    with tempfile.TemporaryDirectory(prefix="kerf-bench-zoo-") as work:
        for entry in entries:
            if entry.path is None:
                rows[entry.id] = {}
                continue
            file_started = time.perf_counter()
            rows[entry.id] = measure_file(entry, work, rounds, block_seconds)
            for what, message in rows[entry.id].get("errors", {}).items():
                print(f"{entry.id}: {what}: {message.splitlines()[0][:300]}", file=sys.stderr)
            loads.append(os.getloadavg()[0])
            print(f"measured {entry.id} in {time.perf_counter() - file_started:.0f} s (load {loads[-1]:.1f})"
                  + (f": {rows[entry.id]['died']}" if "died" in rows[entry.id] else ""), file=sys.stderr)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    table_lines, ratios = table(entries, rows)
    versions = zoo._versions()
    runs = [n for row in rows.values() for per_batch in row.get("runs", {}).values() for n in per_batch.values()]
    header = [
        HEADING,
        "",
        f"On this project's {_cpu()}, Kerf's kernels at `{kerf.instruction_set()}`), measured on {time.strftime('%Y-%m-%d')} with",
        "",
        "```sh",
        _command(argv),
        "```",
        "",
        f"(this run took {seconds / 60:.1f} min, exports {'reused from the zoo cache' if export_seconds < 5 else f'{export_seconds:.0f} s of it'}; "
        f"`make bench` appends this section), the repository at `{_commit()}`, Kerf {kerf.__version__}, ONNX Runtime "
        f"{onnxruntime.__version__}, exports by PyTorch {versions[0]} and transformers {versions[1]}. "
        f"1-minute load average {load_before:.1f} before the run, {min(loads + [load_after]):.1f} to "
        f"{max(loads + [load_after]):.1f} after each file (this run alone keeps it near 1; above {os.cpu_count()}, more "
        "processes wanted a core than the machine has).",
        "",
        "Every file of the zoo (`bindings/python/tests/zoo.py`: CNNs in torchvision's architectures with 1000 classes on "
        "224x224 images, Hugging Face transformers models from small configs with random weights; each exported by the "
        "TorchScript exporter at opset 17 and by dynamo at opset 18) at batch 1 and 8, 1 thread. Token models get "
        f"{SEQUENCE} tokens (every row but the first padded at its end); `gpt2_past` times a decoding step, 1 new token after "
        f"{DECODE_PAST} cached ones; the Whisper encoder reads 80 mel bins x 200 frames. ONNX Runtime: CPU provider, default "
        "graph optimizations, sequential execution, `intra_op_num_threads=1`; Kerf: `session(threads=1)`. *int8* is the file "
        "`kerf.quantize` writes: static QDQ (U8S8, per-channel weights) calibrated on 3 batches of 2 seeded images for the "
        "CNNs, dynamic for the transformers; both engines run that same file. *pruned* is "
        f"`kerf.prune(method=\"channel\", sparsity={zoo.PRUNE_SPARSITY}, channel_multiple={zoo.PRUNE_CHANNEL_MULTIPLE})`: the share of the prunable parameters (Conv, Gemm and MatMul "
        "weight initializers, counted as test_zoo.py counts them) it removes, and ONNX Runtime's latency on the pruned "
        "file over its latency on the unpruned one.",
        "",
        f"Each file is measured in its own process. Its five runners (Kerf and ORT float, Kerf and ORT int8, ORT pruned) take "
        f"turns: after {WARMUP[1]} (batch 1) or {WARMUP[8]} (batch 8) warm-up runs each, {rounds} rounds in which every "
        f"runner runs a block of runs in turn (the order rotating), a block as many runs as fit in {block_seconds:g} s "
        f"(at least {MIN_BLOCK}, at most {MAX_BLOCK}): {min(runs, default=0)} to {max(runs, default=0)} timed runs per "
        "runner. Latency is the median of a runner's timed runs, in ms. Ratios below 1: the first engine or form is faster.",
        "",
    ]
    return header + table_lines + [""] + notes(entries, rows, ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="turns of every runner per file and batch")
    parser.add_argument("--block-seconds", type=float, default=0.15,
                        help=f"seconds of runs per runner per round (at least {MIN_BLOCK}, at most {MAX_BLOCK} runs)")
    parser.add_argument("--out", help="write the section into this file (replacing the section if present)")
    parser.add_argument("--models", help="comma-separated zoo model names (default: all)")
    parser.add_argument("--child", nargs=4, metavar=("NAME", "EXPORTER", "PATH", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("ZOO-BENCH " + json.dumps(child(*args.child, args.rounds, args.block_seconds)), flush=True)
        return 0
    import warnings
    warnings.filterwarnings("ignore")
    models = tuple(args.models.split(",")) if args.models else zoo.MODELS
    unknown = set(models) - set(zoo.MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; the zoo has {', '.join(zoo.MODELS)}")
    lines = section(args.rounds, args.block_seconds, sys.argv[1:], models)
    print("\n".join(lines))
    if args.out:
        from bench import replace_section
        replace_section(Path(args.out), HEADING, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
