#!/usr/bin/env python3
"""Kerf next to ONNX Runtime, in the same process and run, written to BENCHMARKS.md.

    python3 scripts/bench.py --kerf .build/release/kerf --out BENCHMARKS.md [--runs 30]

Both engines get the same model file and the same inputs, one intra-op thread unless the
row says otherwise; each latency is the median of --runs timed runs after 5 warm-up runs.
Kerf is driven through its Python binding (ctypes; one copy in and out per run, as a Python
user sees it). Also measures the load time of a ~100 MB model.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
import kerf  # noqa: E402
import models  # noqa: E402  (the test suite's model builders)


def big_mlp(sizes=(1024, 4096, 4096, 1000), seed=0) -> onnx.ModelProto:
    """MatMul+Add+Relu layers of the given widths (1024-4096-4096-1000: ~25M params, ~100 MB)."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        x = f"a{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(nodes, "mlp_big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def median_ms(fn, runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def latency_rows(name: str, path: str, input_name: str, shape, batches, threads_list, runs: int):
    rows = []
    for threads in threads_list:
        k = kerf.load(path).session(threads=threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        o = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for batch in batches:
            x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
            kt = median_ms(lambda: k.run({input_name: x}), runs)
            ot = median_ms(lambda: o.run(None, {input_name: x}), runs)
            rows.append((name, batch, threads, kt, ot))
    return rows


def load_times(path: str, runs: int = 5):
    def kerf_load():
        with kerf.load(path) as m:
            m.session(threads=1).close()

    def ort_load():
        ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def median_s(fn):
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1000

    def kerf_parse():
        kerf.load(path).close()

    return median_s(kerf_parse), median_s(kerf_load), median_s(ort_load)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kerf", required=True, help="the kerf CLI (for `kerf bench` rows)")
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="kerf-bench-")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_digits.py"), work], check=True, stdout=subprocess.DEVNULL)
    paths = {
        "digits MLP (scikit-learn)": (os.path.join(work, "digits_mlp.onnx"), "X", (64,)),
        "test MLP 64-256-10": (os.path.join(work, "mlp.onnx"), "input", (64,)),
        "test CNN 3x32x32 (residual, BN)": (os.path.join(work, "cnn.onnx"), "image", (3, 32, 32)),
        "MLP 1024-4096-4096-1000": (os.path.join(work, "mlp_big.onnx"), "x", (1024,)),
    }
    onnx.save(models.mlp(in_features=64, hidden=256, classes=10), paths["test MLP 64-256-10"][0])
    onnx.save(models.cnn(channels=32, size=32, classes=10), paths["test CNN 3x32x32 (residual, BN)"][0])
    onnx.save(big_mlp(), paths["MLP 1024-4096-4096-1000"][0])

    rows = []
    for name, (path, input_name, shape) in paths.items():
        rows += latency_rows(name, path, input_name, shape, batches=(1, 32), threads_list=(1,), runs=args.runs)
        print(f"measured {name}", file=sys.stderr)
    big = paths["MLP 1024-4096-4096-1000"][0]
    parse_ms, kerf_load_ms, ort_load_ms = load_times(big)
    big_mb = os.path.getsize(big) / 1e6
    cli = subprocess.run([args.kerf, "bench", paths["test CNN 3x32x32 (residual, BN)"][0], "--threads", "1", "--batch", "32",
                          "--runs", str(args.runs)], check=True, capture_output=True, text=True).stdout.strip()

    ratios = [k / o for (_, _, _, k, o) in rows]
    geomean = float(np.exp(np.mean(np.log(ratios))))
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `make bench` (`python3 scripts/bench.py --kerf .build/release/kerf --out BENCHMARKS.md`)",
        f"on {cpu_name()}, {os.cpu_count()} cores, Kerf {kerf.__version__} (release, static Swift runtime),",
        f"ONNX Runtime {ort.__version__}. Medians of {args.runs} runs after 5 warm-up runs, same process,",
        "same inputs; Kerf through its Python binding. Ratio = Kerf / ORT latency (below 1: Kerf faster).",
        "The machines are shared and noisy: compare ratios within one run, not across runs.",
        "",
        "## Latency, 1 intra-op thread",
        "",
        "| model | batch | threads | Kerf ms | ORT ms | Kerf/ORT |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, batch, threads, k, o in rows:
        lines.append(f"| {name} | {batch} | {threads} | {k:.3f} | {o:.3f} | {k / o:.2f} |")
    lines += [
        "",
        f"Geometric mean Kerf/ORT over this table: **{geomean:.2f}**. Speed is the subject of the issue",
        "\"Transformers and speed\": today Kerf runs the graph as written (no fusion, no pre-packed",
        "weights, one allocation per op output); these numbers are the starting point.",
        "",
        "## Load time of a 100 MB model",
        "",
        f"MLP 1024-4096-4096-1000 saved as one {big_mb:.0f} MB ONNX file (raw_data initializers), median of 5.",
        "",
        "| step | ms |",
        "|---|---:|",
        f"| Kerf: parse + import (`kerf.load`) | {parse_ms:.1f} |",
        f"| Kerf: load + create session | {kerf_load_ms:.1f} |",
        f"| ONNX Runtime: `InferenceSession(path)` | {ort_load_ms:.1f} |",
        "",
        "## `kerf bench` (CLI, no Python in the loop)",
        "",
        "```",
        f"$ kerf bench cnn.onnx --threads 1 --batch 32 --runs {args.runs}",
        cli,
        "```",
        "",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
