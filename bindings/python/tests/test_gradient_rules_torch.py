"""Each gradient rule against PyTorch autograd in float32: a one-node ONNX model whose inputs are
trained initializers, the loss MSE of its output against a random target, and the same function
in PyTorch on the same values. Tolerance: 1e-4 relative, 1e-5 absolute (float sums in two
engines). The Swift suite checks the same rules against finite differences in float64."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

import kerf

torch.set_num_threads(1)


def case(op, shapes, function, attributes=None, constants=None, ranges=None, opset=17, inputs=None, train_mode=True):
    """(op, {name: shape} of trained inputs, torch function of the trained tensors (in order),
    attributes, constant initializers {name: array}, value ranges, opset, node input order,
    whether BatchNormalization runs in training mode)."""
    return dict(op=op, shapes=shapes, function=function, attributes=attributes or {}, constants=constants or {},
                ranges=ranges or {}, opset=opset, inputs=inputs or list(shapes), train_mode=train_mode)


I64 = lambda *v: np.array(v, np.int64)
CASES = {
    "add_broadcast": case("Add", {"a": (2, 3, 4), "b": (3, 1)}, lambda a, b: a + b),
    "sub_broadcast": case("Sub", {"a": (4,), "b": (2, 3, 4)}, lambda a, b: a - b),
    "mul_broadcast": case("Mul", {"a": (2, 3, 4), "b": (1, 4)}, lambda a, b: a * b),
    "div_broadcast": case("Div", {"a": (2, 3, 4), "b": (3, 1)}, lambda a, b: a / b, ranges={"b": (0.5, 2)}),
    "pow": case("Pow", {"a": (3, 4), "b": (4,)}, torch.pow, ranges={"a": (0.5, 2), "b": (0.5, 3)}),
    "sqrt": case("Sqrt", {"x": (3, 5)}, torch.sqrt, ranges={"x": (0.5, 2)}),
    "exp": case("Exp", {"x": (3, 5)}, torch.exp),
    "log": case("Log", {"x": (3, 5)}, torch.log, ranges={"x": (0.5, 2)}),
    "neg": case("Neg", {"x": (3, 5)}, torch.neg),
    "abs": case("Abs", {"x": (3, 5)}, torch.abs),
    "reciprocal": case("Reciprocal", {"x": (3, 5)}, torch.reciprocal, ranges={"x": (0.5, 2)}),
    "relu": case("Relu", {"x": (4, 6)}, torch.relu),
    "leaky_relu": case("LeakyRelu", {"x": (4, 6)}, lambda x: F.leaky_relu(x, 0.2), {"alpha": 0.2}),
    "sigmoid": case("Sigmoid", {"x": (4, 6)}, torch.sigmoid),
    "tanh": case("Tanh", {"x": (4, 6)}, torch.tanh),
    "hard_sigmoid": case("HardSigmoid", {"x": (4, 6)}, F.hardsigmoid, {"alpha": 1 / 6, "beta": 0.5}, ranges={"x": (-4, 4)}),
    "hard_swish": case("HardSwish", {"x": (4, 6)}, F.hardswish, ranges={"x": (-4, 4)}),
    "erf": case("Erf", {"x": (4, 6)}, torch.erf),
    "gelu": case("Gelu", {"x": (4, 6)}, F.gelu, opset=20, ranges={"x": (-3, 3)}),
    "gelu_tanh": case("Gelu", {"x": (4, 6)}, lambda x: F.gelu(x, approximate="tanh"), {"approximate": "tanh"}, opset=20,
                      ranges={"x": (-3, 3)}),
    "softplus": case("Softplus", {"x": (4, 6)}, F.softplus),
    "elu": case("Elu", {"x": (4, 6)}, F.elu),
    "clip": case("Clip", {"x": (4, 6)}, lambda x: torch.clamp(x, -0.5, 0.5),
                 constants={"lo": np.float32(-0.5), "hi": np.float32(0.5)}, inputs=["x", "lo", "hi"]),
    "softmax": case("Softmax", {"x": (2, 3, 5)}, lambda x: torch.softmax(x, -1), ranges={"x": (-2, 2)}),
    "log_softmax_axis1": case("LogSoftmax", {"x": (2, 3, 5)}, lambda x: torch.log_softmax(x, 1), {"axis": 1}),
    "matmul_batched": case("MatMul", {"a": (2, 3, 4), "b": (4, 5)}, torch.matmul),
    "matmul_broadcast": case("MatMul", {"a": (1, 3, 4), "b": (2, 4, 5)}, torch.matmul),
    "matmul_vector": case("MatMul", {"a": (4,), "b": (2, 4, 5)}, torch.matmul),
    "gemm": case("Gemm", {"a": (4, 3), "b": (5, 4), "c": (5,)}, lambda a, b, c: 0.7 * a.T @ b.T + 1.3 * c,
                 {"transA": 1, "transB": 1, "alpha": 0.7, "beta": 1.3}),
    "conv_grouped_strided": case("Conv", {"x": (2, 4, 7, 7), "w": (6, 2, 3, 3), "b": (6,)},
                                 lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=1, groups=2),
                                 {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 2}),
    "conv_depthwise_dilated": case("Conv", {"x": (2, 4, 8, 8), "w": (4, 1, 3, 3)},
                                   lambda x, w: F.conv2d(x, w, padding=2, dilation=2, groups=4),
                                   {"pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 4}),
    "conv_1d": case("Conv", {"x": (2, 3, 9), "w": (4, 3, 3)}, lambda x, w: F.conv1d(x, w, stride=2), {"strides": [2]}),
    "max_pool": case("MaxPool", {"x": (2, 3, 6, 6)}, lambda x: F.max_pool2d(x, 3, 2, 1),
                     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "average_pool": case("AveragePool", {"x": (2, 3, 6, 6)}, lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "global_average_pool": case("GlobalAveragePool", {"x": (2, 3, 4, 5)}, lambda x: x.mean((2, 3), keepdim=True)),
    "global_max_pool": case("GlobalMaxPool", {"x": (2, 3, 4, 5)}, lambda x: x.amax((2, 3), keepdim=True)),
    "batch_norm_frozen": case("BatchNormalization", {"x": (2, 3, 4, 4), "scale": (3,), "bias": (3,)},
                              lambda x, s, b: F.batch_norm(x, torch.tensor([0.1, -0.2, 0.3]), torch.tensor([0.5, 1.5, 2.0]),
                                                           s, b, training=False, eps=1e-3),
                              {"epsilon": 1e-3}, constants={"mean": np.array([0.1, -0.2, 0.3], np.float32),
                                                            "var": np.array([0.5, 1.5, 2.0], np.float32)},
                              inputs=["x", "scale", "bias", "mean", "var"], ranges={"scale": (0.5, 1.5)}, train_mode=False),
    "batch_norm_training": case("BatchNormalization", {"x": (4, 3, 4, 4), "scale": (3,), "bias": (3,)},
                                lambda x, s, b: F.batch_norm(x, None, None, s, b, training=True, eps=1e-3),
                                {"epsilon": 1e-3}, constants={"mean": np.array([0.1, -0.2, 0.3], np.float32),
                                                              "var": np.array([0.5, 1.5, 2.0], np.float32)},
                                inputs=["x", "scale", "bias", "mean", "var"], ranges={"scale": (0.5, 1.5)}),
    "layer_norm": case("LayerNormalization", {"x": (2, 3, 8), "scale": (8,), "bias": (8,)},
                       lambda x, s, b: F.layer_norm(x, (8,), s, b, eps=1e-5), {"epsilon": 1e-5}),
    "reshape": case("Reshape", {"x": (2, 3, 4)}, lambda x: x.reshape(4, -1), constants={"s": I64(4, -1)}, inputs=["x", "s"]),
    "transpose": case("Transpose", {"x": (2, 3, 4)}, lambda x: x.permute(2, 0, 1), {"perm": [2, 0, 1]}),
    "concat": case("Concat", {"a": (2, 3, 4), "b": (2, 2, 4)}, lambda a, b: torch.cat([a, b], 1), {"axis": 1}),
    "split": case("Split", {"x": (2, 5, 3)}, lambda x: torch.split(x, [2, 3], 1)[1], {"axis": 1},
                  constants={"sizes": I64(2, 3)}, inputs=["x", "sizes"]),
    "slice_stepped": case("Slice", {"x": (4, 6, 5)}, lambda x: x[1:4:2][:, torch.tensor([5, 3, 1])],
                          constants={"st": I64(1, -1), "en": I64(4, 0), "ax": I64(0, 1), "sp": I64(2, -2)},
                          inputs=["x", "st", "en", "ax", "sp"]),
    "gather_rows": case("Gather", {"x": (5, 3)}, lambda x: x[torch.tensor([[0, 2, 2], [4, 1, 0]])],
                        constants={"i": np.array([[0, 2, 2], [4, 1, 0]], np.int64)}, inputs=["x", "i"]),
    "expand": case("Expand", {"x": (3, 1)}, lambda x: x.expand(2, 3, 4), constants={"s": I64(2, 3, 4)}, inputs=["x", "s"]),
    "tile": case("Tile", {"x": (2, 3)}, lambda x: x.repeat(2, 3), constants={"r": I64(2, 3)}, inputs=["x", "r"]),
    "pad": case("Pad", {"x": (2, 3)}, lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
                constants={"p": I64(0, 1, 1, 2), "v": np.float32(0.5)}, inputs=["x", "p", "v"]),
    "where": case("Where", {"a": (3, 4), "b": (4,)}, lambda a, b: torch.where(torch.tensor([[True], [False], [True]]), a, b),
                  constants={"c": np.array([[True], [False], [True]])}, inputs=["c", "a", "b"]),
    "reduce_sum": case("ReduceSum", {"x": (2, 3, 4)}, lambda x: x.sum((0, 2)), {"keepdims": 0},
                       constants={"axes": I64(0, -1)}, inputs=["x", "axes"]),
    "reduce_mean": case("ReduceMean", {"x": (2, 3, 4)}, lambda x: x.mean(1, keepdim=True), {"axes": [1]}),
}


def build(spec, rng):
    values = {name: rng.uniform(*spec["ranges"].get(name, (-1, 1)), size=shape).astype(np.float32)
              for name, shape in spec["shapes"].items()}
    attributes = {k: v for k, v in spec["attributes"].items()}
    outputs = ["y", "y2"] if spec["op"] == "Split" else ["y"]
    node = helper.make_node(spec["op"], spec["inputs"], outputs, name="under_test", **attributes)
    initializers = [numpy_helper.from_array(v, n) for n, v in values.items()]
    initializers += [numpy_helper.from_array(np.asarray(v), n) for n, v in spec["constants"].items()]
    wanted = "y2" if spec["op"] == "Split" else "y"
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info(wanted, TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec["opset"])]), values, wanted


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_pytorch_autograd(tmp_path, name):
    spec = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    model, values, output = build(spec, rng)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    tensors = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    expected = spec["function"](*tensors.values())
    target = rng.uniform(-1, 1, size=tuple(expected.shape)).astype(np.float32)
    F.mse_loss(expected, torch.from_numpy(target)).backward()
    trainer = kerf.Trainer(str(path), loss=kerf.loss.MSE(output=output, target="t"), trainable=list(values), threads=1,
                           train_mode=spec["train_mode"])
    loss = trainer.backward({"t": target})
    gradients = trainer.gradients()
    assert sorted(gradients) == sorted(values)
    assert abs(loss - F.mse_loss(expected, torch.from_numpy(target)).item()) <= 1e-5 + 1e-4 * abs(loss)
    for n, t in tensors.items():
        assert gradients[n].shape == tuple(t.shape), n
        np.testing.assert_allclose(gradients[n], t.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name}: d loss / d {n}")
