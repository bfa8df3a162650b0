#!/usr/bin/env python3
"""Int8 inference: latency of float and ONNX Runtime-quantized models in Kerf and in ONNX Runtime.

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/bench_int8.py [--runs 30] [--threads 1] [--only-cnn]

Models: the MLP 1024-4096-4096-1000 of bench_prune.py (batch 1 and 32) and the small
ResNet-style CNN of the int8 tests (batch 1 and 8). Forms: float; ONNX Runtime's dynamic
quantization; static QDQ with uint8 (U8S8) and int8 (S8S8) activations, per-channel weights.
Latency is the median of --runs timed runs after 5 warm-up runs, --threads intra-op threads
(default 1), the two engines taking turns run by run. Also prints Kerf's int8 GEMM throughput (GOP/s) against its
float GEMM through a single MatMulInteger / MatMul model.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from bench_prune import big_mlp, measure  # noqa: E402


def quantized_forms(model, work, name, input_shape):
    """{form: path}: float, ORT dynamic, ORT static U8S8 and S8S8 (QDQ, per-channel)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from test_int8_runtime import Feeds, gaussian

    base = os.path.join(work, name)
    onnx.save(model, base + ".onnx")
    quant_pre_process(base + ".onnx", base + "_prep.onnx", skip_symbolic_shape=True)
    forms = {"float": base + ".onnx"}
    quantize_dynamic(base + ".onnx", base + "_dyn.onnx", weight_type=QuantType.QInt8)
    forms["ORT-dynamic"] = base + "_dyn.onnx"
    calibration_shape = (8,) + tuple(input_shape[1:])
    for label, activation in [("ORT-static U8S8", QuantType.QUInt8), ("ORT-static S8S8", QuantType.QInt8)]:
        path = f"{base}_{activation.name}.onnx"
        quantize_static(base + "_prep.onnx", path, Feeds([gaussian(calibration_shape, s) for s in range(4)]),
                        quant_format=QuantFormat.QDQ, activation_type=activation, weight_type=QuantType.QInt8,
                        per_channel=True)
        forms[label] = path
    return forms


def runners(path, feeds, threads=1):
    import kerf
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    ort = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session = kerf.load(path).session(threads=threads)
    return {"kerf": lambda: session.run(feeds), "ort": lambda: ort.run(None, feeds)}


def gemm_throughput(work, runs):
    """GOP/s of Kerf's int8 GEMM (MatMulInteger u8 x s8) and float GEMM (MatMul), 1 thread."""
    from onnx import TensorProto, helper, numpy_helper

    rows = []
    rng = np.random.default_rng(0)
    for m, k, n in [(1, 1024, 4096), (32, 1024, 4096), (256, 1024, 1024)]:
        for op, dtype in [("MatMulInteger", TensorProto.UINT8), ("MatMul", TensorProto.FLOAT)]:
            if op == "MatMul":
                w, x = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal((m, k)).astype(np.float32)
                out = TensorProto.FLOAT
            else:
                w, x = rng.integers(-127, 128, (k, n)).astype(np.int8), rng.integers(0, 256, (m, k)).astype(np.uint8)
                out = TensorProto.INT32
            graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "g",
                                      [helper.make_tensor_value_info("x", dtype, [m, k])],
                                      [helper.make_tensor_value_info("y", out, [m, n])], [numpy_helper.from_array(w, "w")])
            path = os.path.join(work, f"{op}_{m}.onnx")
            onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
            times = measure(runners(path, {"x": x}), runs)
            rows.append((op, m, k, n, {e: 2 * m * k * n / (t / 1e3) / 1e9 for e, t in times.items()}))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines")
    parser.add_argument("--only-cnn", action="store_true", help="skip the GEMM throughput and the MLP")
    args = parser.parse_args()
    from test_int8_runtime import gaussian, small_resnet

    with tempfile.TemporaryDirectory() as work:
        if not args.only_cnn:
            print("GEMM throughput, 1 thread (GOP/s)")
            print(f"{'op':<14} {'M x K x N':<18} {'Kerf':>7} {'ORT':>7}")
            for op, m, k, n, gops in gemm_throughput(work, args.runs):
                print(f"{op:<14} {f'{m}x{k}x{n}':<18} {gops['kerf']:7.1f} {gops['ort']:7.1f}")
            print()
        print(f"{args.threads} thread(s)")
        print(f"{'model':<22} {'form':<17} {'Kerf ms':>9} {'ORT ms':>9} {'Kerf/ORT':>9} {'Kerf float/int8':>16}")
        models = [("mlp 1024-4096-4096-1000", big_mlp(), (1, 1024), (1, 32)),
                  ("resnet-style cnn", small_resnet(), (1, 3, 32, 32), (1, 8))]
        for name, model, shape, batches in models[1:] if args.only_cnn else models:
            forms = quantized_forms(model, work, name.split()[0], shape)
            for batch in batches:
                feeds = gaussian((batch,) + tuple(shape[1:]), 1)
                float_ms = None
                for form, path in forms.items():
                    times = measure(runners(path, feeds, args.threads), args.runs)
                    float_ms = float_ms or times["kerf"]
                    speedup = "" if form == "float" else f"{float_ms / times['kerf']:.2f}x"
                    print(f"{f'{name} b{batch}':<22} {form:<17} {times['kerf']:9.2f} {times['ort']:9.2f} "
                          f"{times['kerf'] / times['ort']:9.2f} {speedup:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
