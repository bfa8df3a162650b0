#!/usr/bin/env python3
"""Pruning: file size and latency of pruned models in Kerf (dense kernels, sparse kernels) and
ONNX Runtime, and digits accuracy per pruning setting. Part of `make bench`; also standalone:

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/bench_prune.py [--runs 30] [--out FILE]

Every model is pruned with kerf.prune. Latency is the median of --runs timed runs after 5
warm-up runs, 1 intra-op thread, the three engines taking turns run by run so that load from
elsewhere on the machine hits all of them alike (ONNX Runtime's thread spinning is off).
"Kerf dense" runs the pruned file with sparse kernels off; "Kerf sparse" lets Kerf use them
where it measured them faster. Speedups compare with the same engine on the unpruned model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))

# (label, kerf.prune arguments); None = the unpruned model.
SETTINGS = [
    ("unpruned", None),
    ("magnitude 50%", dict(method="magnitude", sparsity=0.5)),
    ("magnitude 70%", dict(method="magnitude", sparsity=0.7)),
    ("magnitude 90%", dict(method="magnitude", sparsity=0.9)),
    ("2:4", dict(method="2:4")),
    ("channel 25%", dict(method="channel", sparsity=0.25)),
    ("channel 50%", dict(method="channel", sparsity=0.5)),
]


def big_mlp(sizes=(1024, 4096, 4096, 1000)):
    """MatMul + bias Add + Relu layers, as torch exports nn.Linear."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, b).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        x = f"a{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(nodes, "mlp_big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def measure(runners: dict, runs: int, warmup: int = 5) -> dict:
    """Median milliseconds per runner, the runners taking turns."""
    for _ in range(warmup):
        for run in runners.values():
            run()
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def nonzero_parameters(path: str) -> int:
    import onnx
    from onnx import numpy_helper
    return sum(int(np.count_nonzero(numpy_helper.to_array(t))) for t in onnx.load(path).graph.initializer)


def latency_table(name: str, original: str, input_name: str, shape: tuple, work: str, runs: int, batches=(1, 32)) -> list[str]:
    import onnxruntime as ort

    import kerf
    lines = [f"### {name}", "",
             "| setting | file MB | non-zero params | batch | Kerf dense ms | Kerf sparse ms | ORT ms "
             "| Kerf speedup | ORT speedup |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = {}
    for label, arguments in SETTINGS:
        path = original
        if arguments is not None:
            path = os.path.join(work, label.replace(" ", "_").replace("%", "").replace(":", "_") + ".onnx")
            kerf.prune(original, path, **arguments)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        ort_session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        with kerf.load(path) as model:
            dense = model.session(threads=1, sparse_kernels=False)
            sparse = model.session(threads=1, sparse_kernels=True)
        for batch in batches:
            feeds = {input_name: np.random.default_rng(batch).random((batch, *shape), dtype=np.float32)}
            expected = ort_session.run(None, feeds)[0]
            for session in (dense, sparse):
                np.testing.assert_allclose(next(iter(session.run(feeds).values())), expected, rtol=1e-3, atol=1e-3)
            ms = measure({"dense": lambda: dense.run(feeds), "sparse": lambda: sparse.run(feeds),
                          "ort": lambda: ort_session.run(None, feeds)}, runs)
            if arguments is None:
                base[batch] = ms
            kerf_best = min(ms["dense"], ms["sparse"])
            lines.append(f"| {label} | {os.path.getsize(path) / 1e6:.2f} | {nonzero_parameters(path):,} | {batch} "
                         f"| {ms['dense']:.3f} | {ms['sparse']:.3f} | {ms['ort']:.3f} "
                         f"| {min(base[batch]['dense'], base[batch]['sparse']) / kerf_best:.2f}x | {base[batch]['ort'] / ms['ort']:.2f}x |")
            print(lines[-1], file=sys.stderr, flush=True)
        dense.close()
        sparse.close()
    return lines + [""]


def digits_table(work: str) -> list[str]:
    import onnxruntime as ort

    import kerf
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_digits.py"), work], check=True, stdout=subprocess.DEVNULL)
    original = os.path.join(work, "digits_mlp.onnx")
    data = np.load(os.path.join(work, "digits_test.npz"))
    lines = ["### Digits MLP accuracy (scikit-learn, 450 test samples)", "",
             "The same file in ONNX Runtime and Kerf gives the same labels for every setting (tested).", "",
             "| setting | scope | accuracy | weights sparsity | parameters |", "|---|---|---:|---:|---:|"]
    for label, arguments in SETTINGS:
        for scope in (("layer", "global") if arguments and arguments["method"] == "magnitude" else ("-",)):
            path, report = original, None
            if arguments is not None:
                path = os.path.join(work, "digits_pruned.onnx")
                report = kerf.prune(original, path, **arguments, **({"scope": scope} if scope != "-" else {}))
            labels = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"X": data["x"]})[0]
            with kerf.load(path) as model, model.session(threads=1) as session:
                assert (session.run({"X": data["x"]})["label"] == labels).all()
            sparsity = f"{report.overall_sparsity:.0%}" if report and arguments["method"] != "channel" else "-"
            params = f"{report.parameters_before:,} -> {report.parameters_after:,}" if report else "-"
            lines.append(f"| {label} | {scope} | {np.mean(labels == data['y']):.4f} | {sparsity} | {params} |")
    return lines + [""]


def section(runs: int) -> list[str]:
    import onnx
    from channel_models import resnet
    work = tempfile.mkdtemp(prefix="kerf-bench-prune-")
    mlp_path, cnn_path = os.path.join(work, "mlp.onnx"), os.path.join(work, "resnet.onnx")
    onnx.save(big_mlp(), mlp_path)
    onnx.save(resnet(seed=0)[0], cnn_path)
    lines = ["## Pruning", "",
             f"Produced by `python3 scripts/bench_prune.py --runs {runs}` (part of `make bench`). Each setting is",
             "`kerf.prune` of the unpruned file; magnitude is layer-wise. Latency: 1 thread, median of",
             f"{runs} runs after 5 warm-up runs, the three engines taking turns. Kerf dense = the pruned file with",
             "`sparse_kernels=False`; Kerf sparse = Kerf choosing sparse kernels where it measured them faster.",
             "Speedups are against the same engine on the unpruned model (Kerf: its faster mode).", ""]
    lines += latency_table("MLP 1024-4096-4096-1000 (MatMul + Add + Relu)", mlp_path, "x", (1024,), work, runs)
    lines += latency_table("ResNet-style CNN 3x32x32 (stem 32, stages 32/64/128 x 2 basic blocks, BN, GAP, Gemm)",
                           cnn_path, "x", (3, 32, 32), work, runs)
    lines += digits_table(work)
    return lines


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
