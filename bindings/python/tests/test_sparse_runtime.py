"""Sparse kernels in Kerf's runtime: an MLP whose weights are ~90% zeros gives ONNX Runtime's
outputs with sparse kernels on and off, in Gemm form and in MatMul + Add form."""

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

import kerf
from models import initializer, make_model

SIZES = (256, 1000, 300, 10)  # widths that do not split evenly over threads


def pruned(rng, shape, zeros=0.9):
    """Normal weights with the `zeros` fraction of smallest magnitudes set to 0."""
    w = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    w[np.abs(w) < np.quantile(np.abs(w), zeros)] = 0
    return w


def sparse_mlp(form, seed=0):
    """x[N, 256] -> 3 layers (Relu between) -> y[N, 10]. form "gemm": Gemm with transB=1 on
    W[out, in]; "matmul": MatMul on W[in, out] followed by Add of the bias."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:])):
        w = pruned(rng, (fan_in, fan_out))
        b = rng.standard_normal(fan_out).astype(np.float32) * 0.1
        if form == "gemm":
            inits += [initializer(f"w{i}", np.ascontiguousarray(w.T)), initializer(f"b{i}", b)]
            nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"h{i}"], transB=1))
        else:
            inits += [initializer(f"w{i}", w), initializer(f"b{i}", b)]
            nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"])]
        x = f"h{i}"
        if i < len(SIZES) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", SIZES[0]])]
    outputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", SIZES[-1]])]
    return make_model(nodes, inputs, outputs, inits, name=f"sparse_mlp_{form}")


@pytest.mark.parametrize("form", ["gemm", "matmul"])
@pytest.mark.parametrize("batch", [1, 8])
def test_sparse_mlp_matches_onnxruntime(form, batch):
    model = sparse_mlp(form)
    data = model.SerializeToString()
    x = np.random.default_rng(1).standard_normal((batch, SIZES[0])).astype(np.float32)
    ort = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = ort.run(None, {"x": x})[0]
    with kerf.load_bytes(data) as m:
        for sparse in (True, False):
            for threads in (1, 2):
                with m.session(threads=threads, sparse_kernels=sparse) as session:
                    # Twice: the first run of a batch size also times both kernels.
                    for _ in range(2):
                        y = session.run({"x": x})[model.graph.output[0].name]
                        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5,
                                                   err_msg=f"sparse_kernels={sparse} threads={threads}")

