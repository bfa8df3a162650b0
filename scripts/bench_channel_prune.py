"""Channel pruning of a ResNet-style CNN on 3x32x32: parameters and ONNX Runtime latency before
and after removing half the channels of every prunable group.

  python3 scripts/bench_channel_prune.py [--sparsity 0.5] [--runs 50]

Model: stem Conv 32, three stages of two basic blocks (32/64/128 channels, strided first block
with a 1x1 projection shortcut in stages 2-3), BatchNorm, Relu, GAP, Gemm 10 (IR 8, opset 17).
Kerf prunes it through the Swift test ChannelPruningFilesTests (debug build; pruning time is
not measured). Latency: ONNX Runtime, 1 intra-op thread, all graph optimizations, median of
--runs runs after 10 warm-up runs, batch 1 and 32.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Compress"))
from channel_models import kerf_prune_dir, parameter_count, resnet  # noqa: E402


def latency_ms(path, batch, runs):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    feed = {s.get_inputs()[0].name: x}
    for _ in range(10):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        model, _ = resnet(seed=0)
        original = os.path.join(d, "resnet.onnx")
        onnx.save(model, original)
        report = kerf_prune_dir(d, sparsity=args.sparsity)["resnet"]
        pruned = os.path.join(d, "resnet.pruned.onnx")
        onnx.checker.check_model(pruned, full_check=True)
        before, after = parameter_count(model), parameter_count(onnx.load(pruned))
        size_before, size_after = os.path.getsize(original), os.path.getsize(pruned)
        print(f"ResNet-style CNN 3x32x32, channel pruning at sparsity {args.sparsity} (criterion l1)")
        print(f"parameters: {before} -> {after} ({1 - after / before:.1%} fewer); "
              f"file {size_before / 1e6:.2f} MB -> {size_after / 1e6:.2f} MB; "
              f"{len(report['skipped'])} group(s) left alone: " + "; ".join(f"{s['name']} ({s['reason']})" for s in report["skipped"]))
        print("| batch | ORT before (ms) | ORT after (ms) | faster |")
        print("|---|---|---|---|")
        for batch in (1, 32):
            a, b = latency_ms(original, batch, args.runs), latency_ms(pruned, batch, args.runs)
            print(f"| {batch} | {a:.3f} | {b:.3f} | {1 - b / a:.1%} |")


if __name__ == "__main__":
    main()
