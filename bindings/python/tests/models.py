"""Small ONNX models built with onnx.helper, shared by the test suites.

Every model is IR 8 / opset 17 (onnx 1.23 would write IR 14, which ONNX
Runtime rejects) and stores initializers as raw_data."""

import resource

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 17


def make_model(nodes, inputs, outputs, initializers=(), name="graph", **model_fields):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="kerf-tests",
        **model_fields,
    )
    return model


def initializer(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def mlp(in_features=16, hidden=32, classes=10, seed=0, input_name="input"):
    """input[N, in] -> Gemm(transB) -> Relu -> Gemm -> Softmax -> probs[N, classes]."""
    rng = np.random.default_rng(seed)
    weights = [
        initializer("w1", rng.normal(0, 0.5, (hidden, in_features)).astype(np.float32)),
        initializer("b1", rng.normal(0, 0.1, hidden).astype(np.float32)),
        initializer("w2", rng.normal(0, 0.5, (hidden, classes)).astype(np.float32)),
        initializer("b2", rng.normal(0, 0.1, classes).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Gemm", [input_name, "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", in_features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        weights,
        name="mlp",
    )


def _conv_bn(rng, prefix, x, channels_in, channels_out):
    """Conv 3x3 (pad 1) + BatchNormalization; returns (nodes, initializers, output name)."""
    inits = [
        initializer(f"{prefix}_w", rng.normal(0, 0.3, (channels_out, channels_in, 3, 3)).astype(np.float32)),
        initializer(f"{prefix}_b", rng.normal(0, 0.1, channels_out).astype(np.float32)),
        initializer(f"{prefix}_scale", rng.uniform(0.5, 1.5, channels_out).astype(np.float32)),
        initializer(f"{prefix}_shift", rng.normal(0, 0.1, channels_out).astype(np.float32)),
        initializer(f"{prefix}_mean", rng.normal(0, 0.1, channels_out).astype(np.float32)),
        initializer(f"{prefix}_var", rng.uniform(0.5, 2.0, channels_out).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", [x, f"{prefix}_w", f"{prefix}_b"], [f"{prefix}_conv"],
                         name=f"{prefix}_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         [f"{prefix}_conv", f"{prefix}_scale", f"{prefix}_shift",
                          f"{prefix}_mean", f"{prefix}_var"],
                         [f"{prefix}_bn"], name=f"{prefix}_bn", epsilon=1e-5),
    ]
    return nodes, inits, f"{prefix}_bn"


def cnn(channels=8, size=8, classes=5, seed=1):
    """image[N, 3, size, size] -> Conv+BN+Relu -> Conv+BN, residual Add, Relu ->
    MaxPool 2x2 -> GlobalAveragePool -> Flatten -> Gemm -> logits[N, classes]."""
    rng = np.random.default_rng(seed)
    nodes1, inits1, bn1 = _conv_bn(rng, "block1", "image", 3, channels)
    nodes2, inits2, bn2 = _conv_bn(rng, "block2", "relu1", channels, channels)
    head = [
        initializer("fc_w", rng.normal(0, 0.5, (channels, classes)).astype(np.float32)),
        initializer("fc_b", rng.normal(0, 0.1, classes).astype(np.float32)),
    ]
    nodes = nodes1 + [helper.make_node("Relu", [bn1], ["relu1"], name="relu1")] + nodes2 + [
        helper.make_node("Add", ["relu1", bn2], ["residual"], name="residual_add"),
        helper.make_node("Relu", ["residual"], ["relu2"], name="relu2"),
        helper.make_node("MaxPool", ["relu2"], ["pooled"], name="maxpool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pooled"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc"),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        inits1 + inits2 + head,
        name="cnn",
    )


def identity(elem_type, shape, name="x"):
    """x -> Identity -> y, both of `elem_type` (a TensorProto code) and `shape`
    (None = unknown rank)."""
    return make_model(
        [helper.make_node("Identity", [name], ["y"], name="identity")],
        [helper.make_tensor_value_info(name, elem_type, shape)],
        [helper.make_tensor_value_info("y", elem_type, shape)],
        name="identity",
    )


def unknown_op(op_type="FooBar", node_name="mystery_node"):
    """x -> Relu -> FooBar (an op no runtime knows) -> y."""
    return make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node(op_type, ["r"], ["y"], name=node_name),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        name="unknown_op",
    )


def two_outputs():
    """x[N, 4] -> (relu = Relu(x), neg = Neg(x), sum = Add(relu, neg))."""
    return make_model(
        [
            helper.make_node("Relu", ["x"], ["relu"], name="relu"),
            helper.make_node("Neg", ["x"], ["neg"], name="neg"),
            helper.make_node("Add", ["relu", "neg"], ["sum"], name="add"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4])
         for name in ("relu", "neg", "sum")],
        name="two_outputs",
    )


def save(model, path):
    """Writes `model` to `path` and returns str(path)."""
    onnx.save_model(model, str(path))
    return str(path)


def run_ort(model, feeds, optimize=True):
    """Runs `model` (ModelProto or bytes) in ONNX Runtime; returns {name: array}. Without
    `optimize`, ONNX Runtime runs every node as written (for QDQ files: QuantizeLinear and
    DequantizeLinear in float, the exact ONNX semantics) instead of fusing int8 kernels."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = onnxruntime.SessionOptions()
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def random_feed(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(0, 1, shape).astype(dtype)


def limit_child_memory(limit=16 << 30):
    """For subprocess's preexec_fn: caps the child's address space (16 GiB by default), so that
    a child that would try to allocate tens of GB fails instead of taking the machine down."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def single_op_model(opset, op, inputs, attrs, outputs):
    """A model of one `op` node at `opset`. `inputs` maps names to arrays: graph inputs, or
    constant initializers for names starting with "@"; `outputs` lists (name, elem type)."""
    graph_inputs, inits, names = [], [], []
    for name, value in inputs.items():
        array = np.asarray(value)
        if name.startswith("@"):
            inits.append(numpy_helper.from_array(array, name[1:]))
            names.append(name[1:])
        else:
            elem = helper.np_dtype_to_tensor_dtype(array.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, list(array.shape)))
            names.append(name)
    node = helper.make_node(op, names, [n for n, _ in outputs], **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info(n, t, None) for n, t in outputs], inits)
    return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", opset)])


def run_single_op(opset, op, inputs, attrs, outputs):
    """Runs `single_op_model(...)` in Kerf (one thread) on the graph inputs: {output name: array}."""
    import kerf

    model = single_op_model(opset, op, inputs, attrs, outputs)
    feeds = {k: np.asarray(v) for k, v in inputs.items() if not k.startswith("@")}
    with kerf.load_bytes(model.SerializeToString()) as m:
        return m.session(threads=1).run(feeds)


def check_single_op_raises(opset, op, inputs, attrs, status, words):
    """Asserts that `run_single_op(...)` (one float output) raises KerfError with `status` and a
    message containing `words`."""
    import pytest
    from kerf import KerfError

    with pytest.raises(KerfError) as failure:
        run_single_op(opset, op, inputs, attrs, [("y", TensorProto.FLOAT)])
    assert failure.value.status == status, str(failure.value)
    assert words in failure.value.message, failure.value.message


def check_single_op(opset, op, inputs, attrs, outputs, rtol=1e-5, atol=1e-6):
    """Runs `single_op_model(...)` in ONNX Runtime and Kerf (one thread) on the graph inputs
    and asserts equal dtypes and shapes and values within rtol/atol (NaN where NaN)."""
    model = single_op_model(opset, op, inputs, attrs, outputs)
    feeds = {k: np.asarray(v) for k, v in inputs.items() if not k.startswith("@")}
    expected = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = run_single_op(opset, op, inputs, attrs, outputs)
    for (name, _), want in zip(outputs, expected):
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=atol, err_msg=f"{op} opset {opset} output {name}")
