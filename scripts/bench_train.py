#!/usr/bin/env python3
"""Training speed and memory: Kerf next to PyTorch (CPU) on the same models, weights and batches.

    python3 scripts/bench_train.py [--steps 30]       # prints the BENCHMARKS.md section

Milliseconds per training step (forward, loss, backward, optimizer update) at batch 32, 1 and 2
threads, each engine in its own process (fresh per model and thread count), the engines taking
turns for `rounds` rounds; the median step of each round after warm-up steps, the median of the
rounds reported, and the peak memory (VmHWM) of each process. Kerf trains the file
torch.onnx.export wrote from the PyTorch module; both use AdamW(lr=1e-3) and cross-entropy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))  # the test suite's PyTorch models

from bench import peak_rss_mb  # noqa: E402  (VmHWM of this process, as the latency bench reports it)

BATCH = 32


def models():
    """name -> (builder of the torch module, input name, input maker (rng, batch) -> array, classes)."""
    import torch
    from torch_training import SmallCNN, TinyEncoder, mlp

    return {
        "digits-size MLP 64-64-10": (lambda: mlp(seed=0, sizes=(64, 64, 10)), "x",
                                     lambda rng, n: rng.standard_normal((n, 64)).astype(np.float32), 10),
        "MLP 1024-4096-4096-1000": (lambda: mlp(seed=0, sizes=(1024, 4096, 4096, 1000)), "x",
                                    lambda rng, n: rng.standard_normal((n, 1024)).astype(np.float32), 1000),
        "ResNet-style CNN (BatchNorm, 3x32x32)": (
            lambda: (torch.manual_seed(0), SmallCNN(classes=10))[1], "image",
            lambda rng, n: rng.standard_normal((n, 3, 32, 32)).astype(np.float32), 10),
        "BERT-style encoder (width 256, 4 heads, 64 tokens)": (
            lambda: (torch.manual_seed(0), TinyEncoder(vocab=1000, width=256, heads=4, length=64, classes=4))[1], "ids",
            lambda rng, n: rng.integers(0, 1000, (n, 64)).astype(np.int64), 4),
    }


def child(engine: str, name: str, path: str, threads: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    build, input_name, make_input, classes = models()[name]
    rng = np.random.default_rng(1)
    batches = [(make_input(rng, BATCH), rng.integers(0, classes, BATCH).astype(np.int64)) for _ in range(8)]
    warmup = 3
    times = []
    if engine == "torch":
        module = build()
        module.load_state_dict(torch.load(path + ".pt"))
        module.train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        for i in range(warmup + steps):
            x, y = tensors[i % len(tensors)]
            start = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(module(x), y).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
    else:
        import kerf

        trainer = kerf.Trainer(path, loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                               optimizer=kerf.optim.AdamW(lr=1e-3), threads=threads)
        for i in range(warmup + steps):
            x, y = batches[i % len(batches)]
            start = time.perf_counter()
            trainer.step({input_name: x, "y": y})
            times.append(time.perf_counter() - start)
    return {"ms": statistics.median(times[warmup:]) * 1000, "peak_mb": peak_rss_mb()}


def measure(engine, name, path, threads, steps):
    out = subprocess.run([sys.executable, __file__, "--child", engine, "--model", name, "--path", path,
                          "--threads", str(threads), "--steps", str(steps)], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def section(steps: int = 30, rounds: int = 3) -> list[str]:
    import torch

    from torch_training import export

    work = tempfile.mkdtemp(prefix="kerf-bench-train-")
    rows = []
    for name, (build, input_name, make_input, _) in models().items():
        module = build()
        path = os.path.join(work, f"{len(rows)}.onnx")
        example = torch.from_numpy(make_input(np.random.default_rng(0), 2))
        export(module, (example,), path, [input_name], ["logits"])
        torch.save(module.state_dict(), path + ".pt")
        for threads in (1, 2):
            results = {"kerf": [], "torch": []}
            for _ in range(rounds):
                for engine in ("kerf", "torch"):
                    results[engine].append(measure(engine, name, path, threads, steps))
            kerf_ms = statistics.median(r["ms"] for r in results["kerf"])
            torch_ms = statistics.median(r["ms"] for r in results["torch"])
            rows.append((name, threads, kerf_ms, torch_ms, max(r["peak_mb"] for r in results["kerf"]),
                         max(r["peak_mb"] for r in results["torch"])))
    ratios = [k / t for _, _, k, t, _, _ in rows]
    geomean = float(np.exp(np.mean(np.log(ratios))))
    lines = [
        "## Training",
        "",
        "`python3 scripts/bench_train.py` (run by `make bench`): milliseconds per training step (forward, cross-entropy,",
        f"backward, AdamW update) at batch {BATCH}, Kerf (`kerf.Trainer.step` on the file `torch.onnx.export` wrote) next to",
        f"PyTorch {torch.__version__} (CPU, `zero_grad` + forward + `backward` + `step`) on the same weights and batches. Each engine",
        f"runs in its own process per model and thread count, taking turns for {rounds} rounds; the median step of {steps}",
        "after 3 warm-up steps, the median of the rounds; peak memory is the process's VmHWM (Python, numpy, the engine;",
        "PyTorch's process also holds torch itself). Ratio = Kerf / PyTorch (below 1: Kerf is faster).",
        "",
        "| model | threads | Kerf ms/step | PyTorch ms/step | ratio | Kerf peak MB | PyTorch peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, threads, k, t, km, tm in rows:
        lines.append(f"| {name} | {threads} | {k:.3f} | {t:.3f} | {k / t:.2f} | {km:.0f} | {tm:.0f} |")
    lines += ["", f"Geometric mean of the ratios: {geomean:.2f} over {len(rows)} rows.", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--model")
    parser.add_argument("--path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.path, args.threads, args.steps)))
        return 0
    print("\n".join(section(args.steps, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
