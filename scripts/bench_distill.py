#!/usr/bin/env python3
"""Knowledge distillation: accuracy of pruned students distilled back, and speed next to PyTorch.

    python3 scripts/bench_distill.py [--digits DIR] [--steps N] [--rounds 3]   # prints the BENCHMARKS.md section

Accuracy: the digits MLP of scripts/train_digits.py (the teacher) pruned four ways with
kerf.prune, then each student trained on the training split for the same budget two ways:
kerf.distill from the teacher (no labels), and kerf.train on the hard labels (cross-entropy on
the logits behind the Softmax). Test accuracy in ONNX Runtime; every written file is checked to
have exactly the pruned file's zeros. Several shuffling seeds show the spread.

Speed: milliseconds per distillation step (teacher forward, student forward, T²·KL, backward,
AdamW update) at batch 32, 1 and 2 threads, Kerf (kerf.distill over a list of batches, one epoch) next
to PyTorch (CPU) on the same weights and batches; the teacher is a model of
scripts/bench_train.py, the student its 50%-magnitude-pruned copy (dense kernels in both
engines). Each engine runs in its own process, the engines taking turns for `rounds` rounds, as
bench_train.py does; the median step of each round after warm-up steps, the median of the rounds,
and the peak memory (VmHWM) of each process.
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
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))  # the test suite's PyTorch models

from bench import peak_rss_mb  # noqa: E402  (VmHWM of this process, as the other benches report it)

BATCH = 32
WARMUP = 3
TEMPERATURE_SPEED = 2.0  # kerf.distill's default (Hugging Face's)

# The accuracy recipe: one budget for distillation and for the hard-label baseline.
EPOCHS = 100
LR = 1e-2
TEMPERATURE = 4.0
SEEDS = (0, 1, 2, 3, 4)  # shuffling seeds; seed 0 is the headline column
WEIGHTS = ("coefficient", "coefficient1")  # the digits MLP's weight matrices ([1, N] intercepts are not pruned)

STUDENTS = [  # (label, kerf.prune arguments)
    ("magnitude 90%, layer", dict(sparsity=0.9, scope="layer")),
    ("magnitude 90%, global", dict(sparsity=0.9, scope="global")),
    ("2:4", dict(method="2:4")),
    ("channel 50%", dict(method="channel", sparsity=0.5)),
]

# The speed rows: models of bench_train.py (its names), teacher = the model, student = its
# 50%-magnitude-pruned copy; timed steps per process (fewer on the big MLP, whose PyTorch step
# takes about a third of a second, to keep the section within a few minutes).
SPEED_MODELS = {"digits-size MLP 64-64-10": 30, "MLP 1024-4096-4096-1000": 15,
                "BERT-style encoder (width 256, 4 heads, 64 tokens)": 30}


# MARK: - Accuracy

def _initializers(path) -> dict:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _ort_accuracy(path, x, y) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"X": x})[0]
    return float((probabilities.argmax(axis=1) == y).mean())


def _same_zeros(pruned: dict, trained: dict) -> bool:
    """Whether the two weight matrices have the same shapes and exactly the same zeros."""
    return all(pruned[w].shape == trained[w].shape and np.array_equal(pruned[w] == 0, trained[w] == 0) for w in WEIGHTS)


def accuracy_rows(digits: str, seeds=SEEDS) -> tuple[float, int, int, list[dict]]:
    """The teacher's test accuracy, the training and test sample counts, and one row per student."""
    import kerf

    teacher = os.path.join(digits, "digits_mlp.onnx")
    train, test = np.load(os.path.join(digits, "digits_train.npz")), np.load(os.path.join(digits, "digits_test.npz"))
    x, y, x_test, y_test = train["x"], train["y"], test["x"], test["y"]
    steps = -(-len(y) // BATCH) * EPOCHS
    rows = []
    with tempfile.TemporaryDirectory(prefix="kerf-bench-distill-") as work:
        for index, (label, arguments) in enumerate(STUDENTS):
            rows.append(_student_row(teacher, work, index, label, arguments, x, y, x_test, y_test, steps, seeds))
    return _ort_accuracy(teacher, x_test, y_test), len(y), len(y_test), rows


def _student_row(teacher, work, index, label, arguments, x, y, x_test, y_test, steps, seeds) -> dict:
    """One student: pruned, then distilled and trained on hard labels once per seed."""
    import kerf

    pruned = os.path.join(work, f"student{index}.onnx")
    report = kerf.prune(teacher, pruned, **arguments)
    weights = _initializers(pruned)
    zeros = sum(int((weights[w] == 0).sum()) for w in WEIGHTS)
    elements = sum(weights[w].size for w in WEIGHTS)
    row = dict(student=label, sparsity=zeros / elements, parameters=report.parameters_before,
               nonzero=report.nonzero_parameters_after,
               pruned=_ort_accuracy(pruned, x_test, y_test), distilled=[], hard=[], zeros_kept=True, seconds=0.0)
    for seed in seeds:
        common = dict(optimizer=kerf.optim.Adam(lr=LR), schedule=kerf.optim.CosineAnnealingLR(T_max=steps),
                      epochs=EPOCHS, batch_size=BATCH, seed=seed, threads=1, keep_sparsity=True)
        distilled, hard = os.path.join(work, f"distilled{index}-{seed}.onnx"), os.path.join(work, f"hard{index}-{seed}.onnx")
        start = time.perf_counter()
        kerf.distill(teacher, pruned, distilled, data={"X": x}, temperature=TEMPERATURE, teacher_threads=1, **common)
        row["seconds"] += time.perf_counter() - start
        kerf.train(pruned, hard, data={"X": x, "y": y}, loss=kerf.loss.CrossEntropy(output="add_result1", labels="y"),
                   **common)
        for path, key in ((distilled, "distilled"), (hard, "hard")):
            row[key].append(_ort_accuracy(path, x_test, y_test))
            row["zeros_kept"] &= _same_zeros(weights, _initializers(path))
    return row


def accuracy_lines(digits: str | None = None, seeds=SEEDS) -> tuple[list[str], bool]:
    """The accuracy part of the section, and whether every written file kept its zeros."""
    if digits is None:
        with tempfile.TemporaryDirectory(prefix="kerf-bench-digits-") as digits:
            subprocess.run([sys.executable, str(REPO / "scripts" / "train_digits.py"), digits], check=True,
                           stdout=subprocess.DEVNULL)
            return accuracy_lines(digits, seeds)
    teacher, samples, test_samples, rows = accuracy_rows(digits, seeds)
    others = ", ".join(str(s) for s in seeds[1:])
    lines = [
        f"### Digits MLP: pruned students distilled back (test accuracy in ONNX Runtime, {test_samples} samples)",
        "",
        f"The teacher is the unpruned digits MLP of `scripts/train_digits.py` (scikit-learn, 64-64-10), test accuracy "
        f"{teacher:.4f}. Each student is `kerf.prune` of it, then trained on the {samples}-sample training split with one budget: "
        f"Adam(lr={LR:g}), cosine annealing over all {EPOCHS} epochs, batch {BATCH}, 1 thread. *Distilled*: `kerf.distill` "
        f"from the teacher (temperature {TEMPERATURE:g}, no labels). *Hard labels*: `kerf.train` with cross-entropy on the "
        "logits behind the Softmax (`add_result1`) against the labels. Both keep the pruned zeros (`keep_sparsity=True`); "
        "*weights sparsity* is the pruned file's fraction of zeros in the two weight matrices (channel pruning removes "
        "hidden units instead: fewer parameters, no zeros); *zeros kept* checks that every written file (both kinds, every seed) has exactly the pruned file's zero mask in "
        "both weight matrices. The accuracy columns are shuffling seed 0; the spread columns give the mean and range over "
        f"seeds 0 and {others}. *Within 1 pt* is seed 0's distilled accuracy against the teacher's.",
        "",
        f"| student | weights sparsity | non-zero parameters (of {rows[0]['parameters']:,}) | pruned acc | distilled acc "
        f"| hard-label acc | within 1 pt | distilled, {len(seeds)} seeds | hard-label, {len(seeds)} seeds "
        "| distilled - hard-label, mean, pts | zeros kept |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        spread = lambda v: f"{np.mean(v):.4f} [{min(v):.4f}, {max(v):.4f}]"  # noqa: E731
        lines.append(
            f"| {r['student']} | {r['sparsity']:.0%} | {r['nonzero']:,} | {r['pruned']:.4f} | {r['distilled'][0]:.4f} "
            f"| {r['hard'][0]:.4f} | {'yes' if teacher - r['distilled'][0] <= 0.01 + 1e-9 else 'no'} "
            f"| {spread(r['distilled'])} | {spread(r['hard'])} | {(np.mean(r['distilled']) - np.mean(r['hard'])) * 100:+.2f} "
            f"| {'yes' if r['zeros_kept'] else 'no'} |")
    seconds = sum(r["seconds"] for r in rows) / (len(rows) * len(seeds))
    lines += ["", f"One {EPOCHS}-epoch distillation run ({-(-samples // BATCH) * EPOCHS:,} steps) takes {seconds:.1f} s here.", ""]
    return lines, all(r["zeros_kept"] for r in rows)


# MARK: - Speed

def _torch_names(module, teacher_path) -> dict:
    """torch parameter name -> (initializer name in the exported file, stored transposed), found by
    value (the TorchScript exporter renames Linear weights and stores them as MatMul's B)."""
    initializers = _initializers(teacher_path)
    mapping = {}
    for name, tensor in module.named_parameters():
        value = tensor.detach().numpy()
        for candidate, array in initializers.items():
            if array.shape == value.shape and np.array_equal(array, value):
                mapping[name] = (candidate, False)
                break
            if array.ndim == 2 and array.T.shape == value.shape and np.array_equal(array.T, value):
                mapping[name] = (candidate, True)
                break
        else:
            raise RuntimeError(f"{name} is not in {teacher_path}")
    return mapping


def speed_child(engine: str, name: str, work: str, threads: int, steps: int) -> dict:
    """One engine's distillation steps; the median step after WARMUP steps, and the peak memory."""
    arrays = np.load(os.path.join(work, "data.npz"))
    input_name = str(arrays["input_name"])
    x = arrays["x"][: (WARMUP + steps) * BATCH]
    if engine == "torch":
        import torch

        import bench_train

        torch.set_num_threads(threads)
        build = bench_train.models()[name][0]
        teacher, student = build(), build()
        teacher.load_state_dict(torch.load(os.path.join(work, "teacher.pt")))
        student.load_state_dict(torch.load(os.path.join(work, "student.pt")))
        teacher.eval()
        student.train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
        functional, t2 = torch.nn.functional, TEMPERATURE_SPEED ** 2
        batches = [torch.from_numpy(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]
        times = []
        for batch in batches:
            start = time.perf_counter()
            with torch.no_grad():
                t = teacher(batch)
            optimizer.zero_grad()
            s = student(batch)
            loss = functional.kl_div(functional.log_softmax(s / TEMPERATURE_SPEED, dim=1),
                                     functional.softmax(t / TEMPERATURE_SPEED, dim=1), reduction="batchmean") * t2
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return {"ms": statistics.median(times[WARMUP:]) * 1000, "peak_mb": peak_rss_mb(), "steps": len(times),
                "run_ms": sum(times) * 1000}

    import kerf

    stamps = []
    start = time.perf_counter()
    report = kerf.distill(os.path.join(work, "teacher.onnx"), os.path.join(work, "student.onnx"),
                          os.path.join(work, f"distilled-{threads}.onnx"),
                          # a list of batches: the teacher runs in every step (given arrays, Kerf would
                          # run it once over the whole data before the first step instead)
                          data=[{input_name: x[i:i + BATCH]} for i in range(0, len(x), BATCH)], epochs=1,
                          batch_size=BATCH, shuffle=False, temperature=TEMPERATURE_SPEED,
                          optimizer=kerf.optim.AdamW(lr=1e-3), threads=threads, teacher_threads=threads,
                          progress=lambda *_: stamps.append(time.perf_counter()))
    # Step i (i >= 1) is the interval between the progress callbacks of steps i - 1 and i; step 0
    # also builds the sessions and the backward graph, and is a warm-up step.
    intervals = np.diff(stamps)[WARMUP - 1:]
    assert report.steps == len(stamps) == WARMUP + steps, (report.steps, len(stamps))
    return {"ms": float(np.median(intervals)) * 1000, "peak_mb": peak_rss_mb(), "steps": report.steps,
            "run_ms": report.seconds_per_step * report.steps * 1000, "first_step_ms": (stamps[0] - start) * 1000}


def _measure(engine, name, work, threads, steps):
    out = subprocess.run([sys.executable, __file__, "--child", engine, "--model", name, "--work", work,
                          "--threads", str(threads), "--steps", str(steps)], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare(name: str, work: str, steps: int) -> None:
    """teacher.onnx/.pt (bench_train's model), student.onnx (kerf.prune, 50% magnitude) and
    student.pt (the same weights in the torch module), data.npz (the batches) in `work`."""
    import torch

    import bench_train
    import kerf
    from torch_training import export

    build, input_name, make_input, _ = bench_train.models()[name]
    module = build()
    teacher = os.path.join(work, "teacher.onnx")
    export(module, (torch.from_numpy(make_input(np.random.default_rng(0), 2)),), teacher, [input_name], ["logits"])
    torch.save(module.state_dict(), os.path.join(work, "teacher.pt"))
    kerf.prune(teacher, os.path.join(work, "student.onnx"), sparsity=0.5)
    pruned = _initializers(os.path.join(work, "student.onnx"))
    state = module.state_dict()
    for parameter, (initializer, transposed) in _torch_names(module, teacher).items():
        value = pruned[initializer].T if transposed else pruned[initializer]
        state[parameter] = torch.from_numpy(np.array(value))  # a writable copy
    torch.save(state, os.path.join(work, "student.pt"))
    x = make_input(np.random.default_rng(1), (WARMUP + steps) * BATCH)
    np.savez(os.path.join(work, "data.npz"), x=x, input_name=np.array(input_name))


def speed_lines(steps: int | None = None, rounds: int = 3) -> list[str]:
    """The speed part; `steps` overrides SPEED_MODELS' timed steps per process."""
    import torch

    rows = []
    for name, model_steps in SPEED_MODELS.items():
        steps_here = steps or model_steps
        with tempfile.TemporaryDirectory(prefix="kerf-bench-distill-speed-") as work:
            _prepare(name, work, steps_here)
            for threads in (1, 2):
                results = {"kerf": [], "torch": []}
                for _ in range(rounds):
                    for engine in ("kerf", "torch"):
                        results[engine].append(_measure(engine, name, work, threads, steps_here))
                kerf_ms = statistics.median(r["ms"] for r in results["kerf"])
                torch_ms = statistics.median(r["ms"] for r in results["torch"])
                rows.append((name, threads, steps_here, kerf_ms, torch_ms,
                             statistics.median(r["run_ms"] for r in results["kerf"]),
                             statistics.median(r["run_ms"] for r in results["torch"]),
                             max(r["peak_mb"] for r in results["kerf"]), max(r["peak_mb"] for r in results["torch"])))
    ratios = [k / t for _, _, _, k, t, *_ in rows]
    geomean = float(np.exp(np.mean(np.log(ratios))))
    counts = sorted({r[2] for r in rows})
    lines = [
        "### Speed: distillation steps next to PyTorch",
        "",
        f"Milliseconds per distillation step at batch {BATCH}: teacher forward, student forward, "
        f"T²·KL(softmax(teacher/T) ‖ softmax(student/T)) with T = {TEMPERATURE_SPEED:g}, backward, AdamW(lr=1e-3) update. "
        "The teacher is a model of `scripts/bench_train.py` (as exported there), the student its 50%-magnitude-pruned copy "
        "(`kerf.prune`, layer-wise; dense kernels in both engines), with the same weights and batches in both engines.",
        "",
        "- Kerf: `kerf.distill` over the batches as a list of feed dicts (one epoch, `threads` = `teacher_threads` "
        "= N; `keep_sparsity` on, its default, so the pruned zeros are also masked around each update), so that the "
        "teacher runs in every step (given arrays, Kerf runs the teacher once over the data before the first epoch). A "
        "step is the interval between two consecutive progress callbacks, so it includes that Python callback and the "
        "batch's conversion. "
        f"*Run* is the report's `seconds_per_step` times its {WARMUP} + n steps: the whole loop, including building both "
        "sessions and the backward graph in the first step (not loading the files).",
        f"- PyTorch {torch.__version__} (CPU, `torch.set_num_threads(N)`): `teacher.eval()` under `torch.no_grad()`, "
        "student forward, `kl_div(log_softmax(s/T), softmax(t/T), reduction=\"batchmean\") * T**2`, `zero_grad` + "
        f"`backward` + `step` (no masking). *Run* is the sum of its {WARMUP} + n steps.",
        "",
        "Each engine runs in its own process per model and thread count (`OMP_NUM_THREADS` = N), taking turns for "
        f"{rounds} rounds; a process times {WARMUP} warm-up steps and then n steps ("
        + " or ".join(str(c) for c in counts) + "; the column n) and reports their median; the table gives the median of "
        "the rounds. Peak memory is the process's VmHWM, the largest of the rounds (Python, numpy and the engine; the "
        "Kerf process does not import torch). Ratio = Kerf / PyTorch (below 1: Kerf is faster).",
        "",
        "| teacher (student: 50% magnitude) | threads | n | Kerf ms/step | PyTorch ms/step | ratio | Kerf run ms "
        "| PyTorch run ms | run ratio | Kerf peak MB | PyTorch peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, threads, n, k, t, kr, tr, km, tm in rows:
        lines.append(f"| {name} | {threads} | {n} | {k:.3f} | {t:.3f} | {k / t:.2f} | {kr:.1f} | {tr:.1f} | {kr / tr:.2f} "
                     f"| {km:.0f} | {tm:.0f} |")
    lines += ["", f"Geometric mean of the step ratios: {geomean:.2f} over {len(rows)} rows.", ""]
    return lines


def section(digits_dir: str | None = None, steps: int | None = None, rounds: int = 3) -> list[str]:
    """The BENCHMARKS.md "Distillation" section; digits_dir reuses scripts/train_digits.py's files."""
    start = time.perf_counter()
    accuracy, kept = accuracy_lines(digits_dir)
    if not kept:
        print("bench_distill: a trained student lost or gained zeros (see 'zeros kept')", file=sys.stderr)
    speed = speed_lines(steps, rounds)
    return ["## Distillation", "",
            f"`python3 scripts/bench_distill.py` (run by `make bench`; this run took {time.perf_counter() - start:.0f} s).",
            ""] + accuracy + speed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", help="a directory scripts/train_digits.py wrote (default: train one)")
    parser.add_argument("--steps", type=int, help="timed steps per process (default: per model, 30 or 15)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("accuracy", "speed"))
    parser.add_argument("--child")
    parser.add_argument("--model")
    parser.add_argument("--work")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(speed_child(args.child, args.model, args.work, args.threads, args.steps)))
        return 0
    if args.only == "accuracy":
        lines, kept = accuracy_lines(args.digits)
        print("\n".join(lines))
        return 0 if kept else 1
    if args.only == "speed":
        print("\n".join(speed_lines(args.steps, args.rounds)))
        return 0
    print("\n".join(section(args.digits, args.steps, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
