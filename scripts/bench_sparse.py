#!/usr/bin/env python3
"""Sparse kernels: an MLP 1024-4096-4096-1000 (Gemm transB=1 + Relu layers) with magnitude-pruned
weights, run by Kerf with dense kernels only, Kerf with sparse kernels, and ONNX Runtime.

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/bench_sparse.py [--runs 30] [--out FILE]

Latency is the median of --runs timed runs per (engine, pattern, batch, threads), after
--warmup runs. The timed runs come in --rounds rounds; in each round every engine runs a block
of one untimed run and then its share of timed runs. Blocks keep one engine's idle workers
(oneDNN's OpenMP threads spin after a GEMM) from taking cores during another's timed runs; the
rounds spread slow phases of a shared machine over all engines alike. ONNX Runtime's workers
do not spin between runs (session.intra_op.allow_spinning = 0) for the same reason.
Prints a Markdown table (and writes it to --out).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

SIZES = (1024, 4096, 4096, 1000)
PATTERNS = ("dense", "50%", "70%", "90%", "2:4")


def prune(w: np.ndarray, pattern: str) -> np.ndarray:
    """w[out, in] with the smallest magnitudes zeroed: a fraction of all entries ("70%"), or 2 of
    every 4 consecutive inputs of each output ("2:4")."""
    if pattern == "dense":
        return w
    if pattern == "2:4":
        groups = w.reshape(w.shape[0], -1, 4)
        order = np.argsort(np.abs(groups), axis=2)
        mask = np.ones_like(groups, dtype=bool)
        np.put_along_axis(mask, order[:, :, :2], False, axis=2)
        return (groups * mask).reshape(w.shape)
    zeros = float(pattern.rstrip("%")) / 100
    return np.where(np.abs(w) < np.quantile(np.abs(w), zeros), np.float32(0), w)


def mlp(pattern: str) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:])):
        w = prune((rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(np.float32), pattern)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(fan_out, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        x = f"g{i}"
        if i < len(SIZES) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(nodes, "mlp_sparse", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", SIZES[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", SIZES[-1]])], inits)
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def measure(runners: dict, runs: int, warmup: int, rounds: int) -> dict:
    """Median milliseconds per runner over `runs` timed runs, in `rounds` rounds of blocks."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runners}
    for r in range(rounds):
        share = runs // rounds + (1 if r < runs % rounds else 0)
        for name, run in runners.items():
            run()
            for _ in range(share):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=PATTERNS)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()

    import onnxruntime as ort

    import kerf

    lines = ["| weights | batch | threads | ORT ms | Kerf dense ms | Kerf sparse ms | sparse vs dense | sparse vs ORT |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for pattern in args.patterns:
        data = mlp(pattern)
        model = kerf.load_bytes(data)
        for threads in args.threads:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Its idle workers would otherwise spin for a while after each run, on the cores
            # the next engine's block is timed on.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            ort_session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            dense = model.session(threads=threads, sparse_kernels=False)
            sparse = model.session(threads=threads, sparse_kernels=True)
            for batch in args.batches:
                x = np.random.default_rng(batch).standard_normal((batch, SIZES[0])).astype(np.float32)
                expected = ort_session.run(None, {"x": x})[0]
                for session in (dense, sparse):
                    y = next(iter(session.run({"x": x}).values()))
                    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-3)
                ms = measure({"ort": lambda: ort_session.run(None, {"x": x}),
                              "dense": lambda: dense.run({"x": x}),
                              "sparse": lambda: sparse.run({"x": x})}, args.runs, args.warmup, args.rounds)
                line = (f"| {pattern} | {batch} | {threads} | {ms['ort']:.2f} | {ms['dense']:.2f} | {ms['sparse']:.2f} "
                        f"| {ms['dense'] / ms['sparse']:.2f}x | {ms['ort'] / ms['sparse']:.2f}x |")
                lines.append(line)
                print(line, flush=True)
            dense.close()
            sparse.close()
        model.close()
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
