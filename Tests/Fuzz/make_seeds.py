"""Writes the fuzzer's seed corpus: small valid ONNX models (each under 20 KB) that exercise the
loader, the optimizer and the common kernels, float and int8. Deterministic: rerunning it writes
the same bytes. Every seed is checked with onnx.checker and run by ONNX Runtime before it is
written, so a seed is a model Kerf should run, not a guess.

Usage: python3 Tests/Fuzz/make_seeds.py [OUT_DIR]   (default: Tests/Fuzz/seeds)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # onnx 1.23 would write IR 14, which ONNX Runtime refuses
rng = np.random.default_rng(16)


def weight(name, shape, dtype=np.float32, scale=0.5):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = rng.integers(max(info.min, -20), min(info.max, 20) + 1, size=shape)
    else:
        values = rng.standard_normal(shape) * scale
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def scalar(name, value, dtype):
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def model(name, nodes, inputs, outputs, initializers=(), sparse=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers),
                              sparse_initializer=list(sparse))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kerf-seeds")
    m.ir_version = IR_VERSION
    return m


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


F = TensorProto.FLOAT


def mlp():
    return model("mlp", [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["h3"]),
        helper.make_node("Gemm", ["h3", "w2", "b2"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ], [vi("x", F, ["batch", 16])], [vi("y", F, ["batch", 4])],
        [weight("w1", (16, 12)), weight("b1", (12,)), weight("w2", (4, 12)), weight("b2", (4,))])


def cnn():
    return model("cnn", [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "dw"], ["c2"], group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["y"]),
    ], [vi("x", F, [1, 3, 8, 8])], [vi("y", F, [1, 5])],
        [weight("cw", (4, 3, 3, 3)), weight("cb", (4,)), weight("g", (4,)), weight("beta", (4,)),
         weight("mean", (4,)), numpy_helper.from_array(np.full(4, 0.9, np.float32), "var"),
         weight("dw", (4, 1, 3, 3)), weight("fw", (4, 5)), weight("fb", (5,))])


def residual_pool():
    return model("residual", [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c", "x"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["sg"]),
        helper.make_node("Mul", ["s", "sg"], ["swish"]),
        helper.make_node("AveragePool", ["swish"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["ap", "lo", "hi"], ["y"]),
    ], [vi("x", F, [1, 2, 6, 6])], [vi("y", F, [1, 2, 3, 3])],
        [weight("w", (2, 2, 1, 1)), scalar("lo", 0.0, np.float32), scalar("hi", 6.0, np.float32)])


def shapes():
    return model("shapes", [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
        helper.make_node("Slice", ["t", "starts", "ends", "axes0"], ["sl"]),
        helper.make_node("ReduceMean", ["sl"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["m", "m"], ["y"], axis=1),
    ], [vi("x", F, ["n", 2, 3])], [vi("y", F, [4, 2])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"),
         numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
         numpy_helper.from_array(np.array([0], np.int64), "axes0"),
         numpy_helper.from_array(np.array([1], np.int64), "starts"),
         numpy_helper.from_array(np.array([5], np.int64), "ends")])


def attention():
    """A BERT-style block in the ops a PyTorch export produces, hidden 8, 2 heads."""
    return model("attention", [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wk"], ["k"]),
        helper.make_node("Reshape", ["q", "heads"], ["qh"]),
        helper.make_node("Reshape", ["k", "heads"], ["kh"]),
        helper.make_node("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["qt", "kt"], ["scores"]),
        helper.make_node("Div", ["scores", "scale"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "qt"], ["ctx"]),
        helper.make_node("Transpose", ["ctx"], ["ct"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ct", "flat"], ["merged"]),
        helper.make_node("Add", ["merged", "x"], ["res"]),
        helper.make_node("LayerNormalization", ["res", "gamma", "beta"], ["ln"], axis=-1, epsilon=1e-5),
        helper.make_node("Div", ["ln", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["ln", "e1"], ["g"]),
        helper.make_node("Mul", ["g", "half"], ["y"]),
    ], [vi("x", F, [1, 4, 8])], [vi("y", F, [1, 4, 8])],
        [weight("wq", (8, 8)), weight("wk", (8, 8)),
         numpy_helper.from_array(np.array([1, 4, 2, 4], np.int64), "heads"),
         numpy_helper.from_array(np.array([1, 4, 8], np.int64), "flat"),
         scalar("scale", 2.0, np.float32), weight("gamma", (8,)), weight("beta", (8,)),
         scalar("sqrt2", 1.4142135, np.float32), scalar("one", 1.0, np.float32), scalar("half", 0.5, np.float32)])


def qdq_matmul():
    """Static int8 as Kerf writes it: u8 activations, s8 per-channel weights (axis 1), int32 bias."""
    U8, I8 = np.uint8, np.int8
    return model("qdq_matmul", [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
        helper.make_node("MatMul", ["xd", "wd"], ["mm"]),
        helper.make_node("DequantizeLinear", ["bq", "bs"], ["bd"], axis=0),
        helper.make_node("Add", ["mm", "bd"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
    ], [vi("x", F, ["batch", 8])], [vi("y", F, ["batch", 6])],
        [scalar("xs", 0.02, np.float32), scalar("xz", 128, U8),
         weight("wq", (8, 6), I8), numpy_helper.from_array(np.full(6, 0.01, np.float32), "ws"),
         numpy_helper.from_array(np.zeros(6, I8), "wz"),
         weight("bq", (6,), np.int32), numpy_helper.from_array(np.full(6, 0.0002, np.float32), "bs"),
         scalar("ys", 0.05, np.float32), scalar("yz", 0, U8)])


def qdq_conv():
    U8, I8 = np.uint8, np.int8
    return model("qdq_conv", [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cd"]),
        helper.make_node("MaxPool", ["cd"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ], [vi("x", F, [1, 2, 6, 6])], [vi("y", F, [1, 3, 3, 3])],
        [scalar("xs", 0.02, np.float32), scalar("xz", 128, U8),
         weight("wq", (3, 2, 3, 3), I8), numpy_helper.from_array(np.full(3, 0.01, np.float32), "ws"),
         numpy_helper.from_array(np.zeros(3, I8), "wz"), scalar("ys", 0.05, np.float32), scalar("yz", 128, U8)])


def dynamic_int8():
    return model("dynamic", [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "wq", "xz", "wz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=F),
        helper.make_node("Mul", ["xs", "ws"], ["s"]),
        helper.make_node("Mul", ["accf", "s"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
    ], [vi("x", F, [2, 8])], [vi("y", F, [2, 4])],
        [weight("wq", (8, 4), np.int8), scalar("wz", 0, np.int8), scalar("ws", 0.01, np.float32), weight("b", (4,))])


def int_inputs():
    """Integer and bool inputs: indices into an embedding, a mask, a Where."""
    return model("embedding", [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("Cast", ["mask"], ["maskf"], to=F),
        helper.make_node("Unsqueeze", ["maskf", "axes"], ["m3"]),
        helper.make_node("Mul", ["emb", "m3"], ["masked"]),
        helper.make_node("Greater", ["masked", "zero"], ["pos"]),
        helper.make_node("Where", ["pos", "masked", "zero"], ["relu"]),
        helper.make_node("ReduceSum", ["relu", "axes1"], ["y"], keepdims=0),
    ], [vi("ids", TensorProto.INT64, [1, 5]), vi("mask", TensorProto.BOOL, [1, 5])], [vi("y", F, [1, 4])],
        [weight("table", (10, 4)), numpy_helper.from_array(np.array([-1], np.int64), "axes"),
         numpy_helper.from_array(np.array([1], np.int64), "axes1"), scalar("zero", 0.0, np.float32)])


def sparse_weight():
    """A sparse initializer (COO, flat indices) feeding a MatMul."""
    values = numpy_helper.from_array(np.array([1.0, -2.0, 0.5], np.float32), "w")
    indices = numpy_helper.from_array(np.array([0, 7, 13], np.int64), "w_indices")
    sparse = helper.make_sparse_tensor(values, indices, [4, 4])
    m = model("sparse", [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ], [vi("x", F, [2, 4])], [vi("y", F, [2, 4])], sparse=[sparse])
    return m


SEEDS = {
    "mlp": mlp, "cnn": cnn, "residual": residual_pool, "shapes": shapes, "attention": attention,
    "qdq_matmul": qdq_matmul, "qdq_conv": qdq_conv, "dynamic_int8": dynamic_int8,
    "embedding": int_inputs, "sparse": sparse_weight,
}


def check_runs(m):
    """onnx.checker (full) and one ONNX Runtime run: a seed must be a valid, runnable model."""
    import onnxruntime as ort
    # The checker's shape inference types a sparse initializer as a sparse tensor, which no op
    # accepts: check sparse models without it (ONNX Runtime densifies them and runs them).
    onnx.checker.check_model(m, full_check=not m.graph.sparse_initializer)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        kind = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}[i.type]
        feeds[i.name] = np.zeros(shape, kind)
    session.run(None, feeds)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")
    os.makedirs(out, exist_ok=True)
    for name, build in SEEDS.items():
        m = build()
        check_runs(m)
        data = m.SerializeToString()
        assert len(data) < 20_000, f"{name}: {len(data)} bytes"
        with open(os.path.join(out, f"{name}.onnx"), "wb") as f:
            f.write(data)
        print(f"{name}.onnx {len(data)} bytes")


if __name__ == "__main__":
    main()
