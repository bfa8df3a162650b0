#!/usr/bin/env python3
"""Kerf next to ONNX Runtime in one run, written to BENCHMARKS.md.

    python3 scripts/bench.py --kerf .build/release/kerf --out BENCHMARKS.md [--runs 30] [--rounds 5]

Each (engine, model, threads) is measured in a fresh child process, so peak memory (ru_maxrss)
belongs to one engine and neither engine's thread pool disturbs the other. Latency is the
median of --runs timed runs after 5 warm-up runs, on the same inputs for both engines. Kerf is
driven through its Python binding, ONNX Runtime through its own; both pay Python's per-call cost.
The engines take turns for --rounds rounds (a fresh process each time) and each reports the
median of its rounds' medians, so that a burst of load on the shared machine during one
process does not decide a row.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))


# MARK: - Models

def build_models(work: str) -> list[dict]:
    import onnx

    import models
    import transformer_models as tm
    from bench_prune import big_mlp

    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_digits.py"), work], check=True, stdout=subprocess.DEVNULL)
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_resnet50.onnx")
    specs = [
        dict(name="digits MLP (scikit-learn)", path=os.path.join(work, "digits_mlp.onnx"), feeds="image", shape=(64,), input="X",
             batches=(1, 32, 256, 1024)),
        dict(name="MLP 1024-4096-4096-1000", build=big_mlp, feeds="image", shape=(1024,), input="x", batches=(1, 32, 256, 1024)),
        dict(name="ResNet-style CNN 3x32x32", build=lambda: models.cnn(channels=32, size=32, classes=10), feeds="image",
             shape=(3, 32, 32), input="image"),
        dict(name="BERT-style encoder, 2 layers, seq 128", build=tm.bert_encoder, feeds="bert", shape=(128,)),
        dict(name="ResNet-50 (light)", path=light, feeds="image", shape=(3, 224, 224), input="gpu_0/data_0", batches=(1,)),
    ]
    for s in specs:
        if "build" in s:
            s["path"] = os.path.join(work, s["name"].split()[0].lower().replace("-", "_") + ".onnx")
            onnx.save(s.pop("build")(), s["path"])
    return specs


def make_feeds(spec: dict, batch: int) -> dict:
    if spec["feeds"] == "bert":
        import transformer_models as tm
        return tm.bert_feeds(batch, spec["shape"][0])
    return {spec["input"]: np.random.default_rng(0).random((batch, *spec["shape"]), dtype=np.float32)}


# MARK: - Child: one engine, one model, one thread count

FAST_BUDGET_S = 0.3
FAST_RUNS = 2000


def runner(engine: str, path: str, threads: int):
    """A function running the model at `path` on the engine ("kerf" or "ort") with these feeds."""
    if engine == "kerf":
        import kerf
        session = kerf.load(path).session(threads=threads)
        return lambda feeds: session.run(feeds)
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda feeds: s.run(None, feeds)


def child(engine: str, spec: dict, threads: int, batches: list[int], runs: int) -> dict:
    run = runner(engine, spec["path"], threads)
    latency = {}
    for batch in batches:
        feeds = make_feeds(spec, batch)
        start = time.perf_counter()
        for _ in range(5):
            run(feeds)
        # Fast models get more runs, as many as fit in FAST_BUDGET_S: their medians move less.
        warm = (time.perf_counter() - start) / 5
        times = []
        # Large batches (256 rows and more) take seconds a run: fewer runs, still a median.
        least = runs if batch < 256 else max(5, runs // 6)
        for _ in range(max(least, min(FAST_RUNS, int(FAST_BUDGET_S / max(warm, 1e-9))))):
            t = time.perf_counter()
            run(feeds)
            times.append(time.perf_counter() - t)
        latency[batch] = statistics.median(times) * 1000
    return {"latency_ms": latency, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak across fork + exec.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def gemm_gflops(threads: int, shape=(1024, 1024, 1024), runs: int = 20) -> dict:
    """Throughput of one float32 MatMul model X[m, k] x W[k, n] (W a constant) through both engines
    in this process, their runs interleaved (neighbours on a shared machine slow both alike):
    {engine: {"gflops": of the median run, "best_gflops": of the fastest run}}."""
    from onnx import TensorProto, helper, numpy_helper
    import onnx
    m, k, n = shape
    w = numpy_helper.from_array(np.random.default_rng(1).random((k, n), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [w])
    path = os.path.join(tempfile.mkdtemp(), "gemm.onnx")
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
    feeds = {"x": np.random.default_rng(0).random((m, k), dtype=np.float32)}
    runs_of = {e: runner(e, path, threads) for e in ("kerf", "ort")}
    times = {e: [] for e in runs_of}
    for run in runs_of.values():
        for _ in range(3):
            run(feeds)
    for _ in range(runs):
        for e, run in runs_of.items():
            t = time.perf_counter()
            run(feeds)
            times[e].append(time.perf_counter() - t)
    flop = 2 * m * k * n
    return {e: {"gflops": flop / statistics.median(t) / 1e9, "best_gflops": flop / min(t) / 1e9} for e, t in times.items()}


FMA_PROBE = r"""
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
/* 12 independent chains of 8-lane FMAs (ymm0..ymm11 = ymm0..ymm11 * ymm12 + ymm13), the whole
 * loop in assembly: in C the compiler merges chains that start from equal values or stores the
 * chains to memory every iteration, and the probe measures something else. */
#define FMA(r) "vfmadd213ps %%ymm13, %%ymm12, %%ymm" #r "\n\t"
static void chains(long n) {
    __asm__ volatile(
        "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n\t" "vpsrld $2, %%ymm12, %%ymm12\n\t" /* 0x3fffffff: just under 2 */
        "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
        "vxorps %%ymm0, %%ymm0, %%ymm0\n\t" "vxorps %%ymm1, %%ymm1, %%ymm1\n\t" "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
        "vxorps %%ymm3, %%ymm3, %%ymm3\n\t" "vxorps %%ymm4, %%ymm4, %%ymm4\n\t" "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t" "vxorps %%ymm7, %%ymm7, %%ymm7\n\t" "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
        "vxorps %%ymm9, %%ymm9, %%ymm9\n\t" "vxorps %%ymm10, %%ymm10, %%ymm10\n\t" "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "1:\n\t"
        FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7) FMA(8) FMA(9) FMA(10) FMA(11)
        "dec %0\n\t" "jnz 1b\n\t" "vzeroupper\n\t"
        : "+r"(n) : : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13");
}
int main(void) {
    long n = 20000000; double times[9];
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        chains(n);
        times[r] = now() - t0;
    }
    for (int i = 1; i < 9; i++)  /* sorted: best first, median in the middle */
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) { double t = times[j]; times[j] = times[j - 1]; times[j - 1] = t; }
    printf("%f %f\n", n * 12 * 16 / times[0] / 1e9, n * 12 * 16 / times[4] / 1e9);
    return 0;
}
"""


def avx2_roofline_gflops() -> tuple[float, float]:
    """The AVX2 FMA roofline of one core as this machine runs it now: 12 independent chains of
    8-lane fused multiply-adds (2 FMA units x 8 lanes x 2 FLOP per cycle), the best of 9 runs:
    what the core does when no neighbour slows it (GEMM rows are compared by their best run too)."""
    folder = tempfile.mkdtemp()
    source, binary = os.path.join(folder, "probe.c"), os.path.join(folder, "probe")
    with open(source, "w") as f:
        f.write(FMA_PROBE)
    subprocess.run(["cc", "-O2", "-mavx2", "-mfma", source, "-o", binary], check=True)
    best, median = subprocess.run([binary], check=True, capture_output=True, text=True).stdout.split()
    return float(best), float(median)


def load_times(path: str, feeds: dict, runs: int = 5) -> tuple[float, float, float, float, float]:
    """Medians (ms) of: Kerf load; Kerf load + session; Kerf load + session + first run (which
    packs the float weights); ORT session; ORT session + first run."""
    import onnxruntime as ort

    import kerf

    def median_ms(fn):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    def kerf_session(run=False):
        with kerf.load(path) as m, m.session(threads=1) as s:
            if run:
                s.run(feeds)

    def ort_session(run=False):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        if run:
            s.run(None, feeds)

    return (median_ms(lambda: kerf.load(path).close()), median_ms(kerf_session), median_ms(lambda: kerf_session(True)),
            median_ms(ort_session), median_ms(lambda: ort_session(True)))


# MARK: - Parent

def avx2_shim() -> str | None:
    """scripts/cpuid_avx2.c built as a preloadable library when it can hide this CPU's AVX-512:
    Linux's CPUID faulting is available and there is AVX-512 to hide. None otherwise (an AVX2-only
    CPU needs no shim; without CPUID faulting ONNX Runtime keeps the CPU's own level)."""
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    if "cpuid_fault" not in flags or "avx512f" not in flags:
        return None
    library = os.path.join(tempfile.mkdtemp(), "cpuid_avx2.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", os.path.join(ROOT, "scripts", "cpuid_avx2.c"), "-o", library], check=True)
    return library


def measure(engine, spec, threads, batches, runs, isa=None, preload=None):
    """One child's measurement; `isa` sets KERF_MAX_ISA for Kerf, `preload` (a library for
    LD_PRELOAD, as avx2_shim's) applies to both engines."""
    args = [sys.executable, __file__, "--child", engine, "--spec", json.dumps(spec), "--threads", str(threads),
            "--batches", ",".join(map(str, batches)), "--runs", str(runs)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("KERF_MAX_ISA", None)
    if isa and engine in ("kerf", "both"):
        env["KERF_MAX_ISA"] = isa
    if preload:
        env["LD_PRELOAD"] = preload
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def latency_rows(specs, rounds, runs, isa=None, preload=None):
    """(model, batch, threads, Kerf ms, ORT ms, Kerf peak MB, ORT peak MB) for every model,
    batch and thread count, the engines taking turns for `rounds` rounds."""
    rows = []
    for spec in specs:
        batches = list(spec.get("batches", (1, 32)))
        for threads in (1, 2):
            turns = {"kerf": [], "ort": []}
            for _ in range(max(1, rounds)):
                for engine in turns:
                    turns[engine].append(measure(engine, spec, threads, batches, runs, isa, preload))
            for batch in batches:
                kb, ob = (statistics.median(t["latency_ms"][str(batch)] for t in turns[e]) for e in ("kerf", "ort"))
                rows.append((spec["name"], batch, threads, kb, ob, max(t["peak_rss_mb"] for t in turns["kerf"]),
                             max(t["peak_rss_mb"] for t in turns["ort"])))
            print(f"measured {spec['name']} threads {threads}" + (f" (Kerf at {isa})" if isa else ""), file=sys.stderr)
    return rows


def latency_table(rows) -> list[str]:
    ratios = [k / o for (_, _, _, k, o, _, _) in rows]
    geomean = float(np.exp(np.mean(np.log(ratios))))
    worst = max(rows, key=lambda r: r[3] / r[4])
    lines = ["| model | batch | threads | Kerf ms | ORT ms | Kerf/ORT | Kerf peak MB | ORT peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, batch, threads, k, o, km, om in rows:
        lines.append(f"| {name} | {batch} | {threads} | {k:.3f} | {o:.3f} | {k / o:.2f} | {km:.0f} | {om:.0f} |")
    lines += ["", f"**Geometric mean Kerf/ORT: {geomean:.2f}** over {len(rows)} rows; worst row: {worst[0]}, batch {worst[1]},",
              f"{worst[2]} thread(s), {worst[3] / worst[4]:.2f}."]
    return lines


GEMM_SHAPES = [(1024, 1024, 1024), (32, 1024, 4096), (32, 4096, 4096)]


def gemm_rows(runs: int, preload=None) -> list[str]:
    """The AVX2 GEMM table: Kerf capped at AVX2 against the AVX2 FMA roofline, ONNX Runtime beside
    it (with `preload`, avx2_shim's library, at AVX2 too). Shares compare best runs with the
    roofline's best run: both are what the core does when no neighbour on the shared machine
    slows it; the medians show how much neighbours did."""
    roof_best, roof_median = avx2_roofline_gflops()
    gemm = {s: measure("both", {"gemm": True, "shape": s}, 1, [1], runs, "avx2", preload) for s in GEMM_SHAPES}
    ort_level = "AVX2" if preload else "native"
    lines = [
        f"AVX2 FMA roofline of one core, measured now: **{roof_best:.1f} GFLOP/s** (best of 9 runs, median",
        f"{roof_median:.1f}; 12 independent chains of 8-lane FMAs written in assembly: 2 FMA units x 8 lanes x",
        f"2 FLOP x {roof_best / 32:.2f} GHz effective clock).",
        "",
        f"| MatMul m x k x n, 1 thread | Kerf (AVX2) GFLOP/s, median | Kerf best run | best run / roofline | ORT ({ort_level}) GFLOP/s, median | Kerf / ORT time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in GEMM_SHAPES:
        k, o = gemm[s]["kerf"], gemm[s]["ort"]
        lines.append(f"| {s[0]} x {s[1]} x {s[2]} | {k['gflops']:.1f} | {k['best_gflops']:.1f} | "
                     f"{k['best_gflops'] / roof_best:.0%} | {o['gflops']:.1f} | {o['gflops'] / k['gflops']:.2f} |")
    return lines


def avx2_section(specs, rounds, runs) -> list[str]:
    """Kerf capped at AVX2 (KERF_MAX_ISA=avx2) next to ONNX Runtime at AVX2 too where this CPU
    allows hiding its AVX-512 (avx2_shim), else at the CPU's own level."""
    preload = avx2_shim()
    if preload:
        engines = ["Kerf run with `KERF_MAX_ISA=avx2` (its own kernels and oneDNN's capped at AVX2 + FMA), and both",
                   "engines' processes see this CPU without AVX-512, AVX-VNNI and AMX (`scripts/cpuid_avx2.c`, preloaded:",
                   "Linux's CPUID faulting answers every CPUID with those features cleared), so ONNX Runtime's MLAS runs",
                   "its AVX2 kernels too, as on an AMD Zen 3. The instruction set is Zen 3's, the microarchitecture is",
                   "still this CPU's. The same method as above."]
    else:
        engines = ["Kerf run with `KERF_MAX_ISA=avx2` (its own kernels and oneDNN's capped at AVX2 + FMA, as on an AMD Zen 3),",
                   "ONNX Runtime at this CPU's own level: its kernels could not be capped here (no CPUID faulting, or no",
                   "AVX-512 to hide), so on an AVX-512 CPU the ratios below favour it. The same method as above."]
    lines = ["## AVX2 (capped)", ""] + engines + [""] + gemm_rows(runs, preload)
    lines += ["", "### Latency, Kerf capped at AVX2", ""]
    lines += latency_table(latency_rows(specs, rounds, runs, "avx2", preload))
    return lines + [""]


def replace_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replaces the section of `path` from the line `heading` to the next `## ` heading by `lines`,
    or appends `lines` when `path` has no such heading. Creates `path` if missing."""
    old = path.read_text().splitlines() if path.exists() else []
    new = list(lines)
    while new and not new[-1]:
        new.pop()
    if heading in old:
        start = old.index(heading)
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
        merged = old[:start] + new + ([""] if end < len(old) else []) + old[end:]
    else:
        while old and not old[-1]:
            old.pop()
        merged = old + ([""] if old else []) + new
    path.write_text("\n".join(merged) + "\n")


def cpu_name() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kerf", help="the kerf CLI (for the `kerf bench` example)")
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="turns per engine, model and thread count")
    parser.add_argument("--child")
    parser.add_argument("--spec")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1")
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.spec)
        if spec.get("gemm"):
            print(json.dumps(gemm_gflops(args.threads, tuple(spec.get("shape", (1024, 1024, 1024))), args.runs)))
        else:
            print(json.dumps(child(args.child, spec, args.threads, [int(b) for b in args.batches.split(",")], args.runs)))
        return 0

    import onnxruntime as ort

    import kerf
    work = tempfile.mkdtemp(prefix="kerf-bench-")
    specs = build_models(work)
    rows = latency_rows(specs, args.rounds, args.runs)
    gemm = {(e, t): g[e]["gflops"] for t in (1, 2) for g in [measure("both", {"gemm": True}, t, [1], args.runs)]
            for e in ("kerf", "ort")}
    big = next(s for s in specs if s["name"].startswith("MLP 1024"))["path"]
    big_spec = next(s for s in specs if s["name"].startswith("MLP 1024"))
    load = load_times(big, make_feeds(big_spec, 1))

    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python3 scripts/bench.py --kerf .build/release/kerf --out BENCHMARKS.md`)",
        f"on {cpu_name()}, {os.cpu_count()} cores; Kerf {kerf.__version__} (release build, static Swift runtime, kernels at",
        f"instruction-set level `{kerf.instruction_set()}`),",
        f"ONNX Runtime {ort.__version__} (CPU provider, default graph optimizations). Each engine runs in its own",
        f"process per model and thread count; latency is the median of {args.runs} runs (of more for fast models: as many",
        f"as fit in {FAST_BUDGET_S} s, up to {FAST_RUNS}) after 5 warm-up runs on the",
        f"same inputs, both engines called from Python, the engines taking turns for {args.rounds} rounds (fresh processes)",
        "and each reporting the median of its rounds' medians; peak memory is the largest of the rounds.",
        "Ratio = Kerf / ORT latency (below 1: Kerf is faster).",
        "The machines are shared and noisy: compare ratios within one run.",
        "",
        "## Latency",
        "",
    ]
    lines += latency_table(rows)
    lines += [
        "Peak memory is the whole process (Python, numpy and the",
        "engine), measured per engine in separate processes. Light ResNet-50 declares batch 1 in the file, so it",
        "runs at batch 1 only.",
        "",
        "## GEMM throughput",
        "",
        "One 1024x1024x1024 float32 MatMul model through each engine, both in one process, their runs interleaved",
        "(GFLOP/s of the median run):",
        "",
        "| threads | Kerf (oneDNN sgemm) | ONNX Runtime (MLAS) |",
        "|---:|---:|---:|",
        f"| 1 | {gemm[('kerf', 1)]:.1f} | {gemm[('ort', 1)]:.1f} |",
        f"| 2 | {gemm[('kerf', 2)]:.1f} | {gemm[('ort', 2)]:.1f} |",
        "",
        "docs/architecture.md (Dependencies) gives the measurements that chose oneDNN for this GEMM.",
        "",
        "## Load time of a 100 MB model",
        "",
        f"The MLP 1024-4096-4096-1000 as one {os.path.getsize(big) / 1e6:.0f} MB ONNX file (raw_data initializers), median of 5.",
        "",
        "| step | ms |",
        "|---|---:|",
        f"| Kerf: parse + import (`kerf.load`) | {load[0]:.1f} |",
        f"| Kerf: load + create session (graph optimizations) | {load[1]:.1f} |",
        f"| Kerf: load + create session + first run, batch 1 (packs the float weights) | {load[2]:.1f} |",
        f"| ONNX Runtime: `InferenceSession(path)` | {load[3]:.1f} |",
        f"| ONNX Runtime: `InferenceSession(path)` + first run, batch 1 | {load[4]:.1f} |",
        "",
    ]
    if args.kerf:
        cnn = next(s for s in specs if s["name"].startswith("ResNet-style"))
        cli = subprocess.run([args.kerf, "bench", cnn["path"], "--threads", "1", "--batch", "32", "--runs", str(args.runs)],
                             check=True, capture_output=True, text=True).stdout.strip()
        lines += ["## `kerf bench` (CLI, no Python in the loop)", "", "```",
                  f"$ kerf bench resnet_style_cnn.onnx --threads 1 --batch 32 --runs {args.runs}", cli, "```", ""]
    if kerf.instruction_set() in ("avx512", "avx512_vnni"):
        lines += avx2_section(specs, args.rounds, args.runs)
    import bench_prune
    import bench_quantize
    import bench_train
    lines += bench_prune.section(args.runs)
    lines += bench_quantize.section(args.runs, digits_dir=work)  # reuses the digits model trained above
    lines += bench_train.section()
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
