"""Models for the channel-pruning tests and benchmark, built with onnx.helper (IR 8, opset 17)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Collects nodes and float32 initializers; weights are seeded He-style random."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], {}
        self.count = 0

    def const(self, name, array):
        self.inits[name] = np.asarray(array)
        return name

    def node(self, op, inputs, name=None, **attrs):
        self.count += 1
        name = name or f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [name + ".out"], name=name, **attrs))
        return name + ".out"

    def conv(self, x, c, m, name, k=3, stride=1):
        fan_in = c * k * k
        w = self.rng.normal(0, np.sqrt(2 / fan_in), (m, c, k, k)).astype(np.float32)
        return self.node("Conv", [x, self.const(name + ".weight", w)], name=name,
                         pads=[k // 2] * 4, strides=[stride, stride])

    def bn(self, x, c, name):
        r = self.rng
        return self.node("BatchNormalization", [
            x, self.const(name + ".scale", r.uniform(0.5, 1.5, c).astype(np.float32)),
            self.const(name + ".B", r.normal(0, 0.1, c).astype(np.float32)),
            self.const(name + ".mean", r.normal(0, 0.1, c).astype(np.float32)),
            self.const(name + ".var", r.uniform(0.5, 1.5, c).astype(np.float32))], name=name)

    def gemm(self, x, k, n, name):
        w = self.rng.normal(0, np.sqrt(2 / k), (k, n)).astype(np.float32)
        b = self.rng.normal(0, 0.1, n).astype(np.float32)
        return self.node("Gemm", [x, self.const(name + ".weight", w), self.const(name + ".bias", b)], name=name)

    def model(self, x_shape, output, infer_shapes=True):
        graph = helper.make_graph(
            self.nodes, "kerf_channel_test",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return onnx.shape_inference.infer_shapes(m) if infer_shapes else m


def resnet(seed=0, widths=(32, 64, 128), blocks=2, classes=10, zero_half=False):
    """ResNet-style CNN on N x 3 x 32 x 32: stem Conv-BN-Relu, stages of basic blocks (the first of
    each later stage strided, with a 1x1 Conv-BN projection shortcut), GAP, Flatten, Gemm.

    With zero_half, half the channels of every prunable group are made exactly zero (filters,
    BN shift and mean) in all its tied members, so removing them must not change the outputs.
    Returns (model, groups) with groups a list of (channel count, [(conv, bn)]) members."""
    b = Builder(seed)
    groups = []
    h = b.node("Relu", [b.bn(b.conv("x", 3, widths[0], "stem"), widths[0], "stem.bn")])
    stream = [("stem", "stem.bn")]
    c = widths[0]
    for s, width in enumerate(widths):
        for k in range(blocks):
            p = f"s{s}.b{k}"
            stride = 2 if s > 0 and k == 0 else 1
            t = b.node("Relu", [b.bn(b.conv(h, c, width, p + ".conv1", stride=stride), width, p + ".bn1")])
            groups.append((width, [(p + ".conv1", p + ".bn1")]))
            t = b.bn(b.conv(t, width, width, p + ".conv2"), width, p + ".bn2")
            if stride != 1 or c != width:
                groups.append((c, stream))
                short = b.bn(b.conv(h, c, width, p + ".proj", k=1, stride=stride), width, p + ".proj.bn")
                stream = [(p + ".proj", p + ".proj.bn")]
            else:
                short = h
            stream.append((p + ".conv2", p + ".bn2"))
            h = b.node("Relu", [b.node("Add", [t, short], name=p + ".add")])
            c = width
    groups.append((c, stream))
    pooled = b.node("Flatten", [b.node("GlobalAveragePool", [h])])
    out = b.gemm(pooled, c, classes, "fc")
    if zero_half:
        for channels, members in groups:
            gone = b.rng.permutation(channels)[: channels // 2]
            for conv, bn in members:
                b.inits[conv + ".weight"][gone] = 0
                b.inits[bn + ".B"][gone] = 0
                b.inits[bn + ".mean"][gone] = 0
    return b.model(["N", 3, 32, 32], out), groups


def mlp(seed=1, sizes=(64, 256, 256, 10), zero_half=False):
    """Gemm-Relu-Gemm-Relu-Gemm on N x sizes[0]."""
    b = Builder(seed)
    h = "x"
    for i in range(len(sizes) - 1):
        h = b.gemm(h, sizes[i], sizes[i + 1], f"fc{i + 1}")
        if i < len(sizes) - 2:
            if zero_half:
                gone = b.rng.permutation(sizes[i + 1])[: sizes[i + 1] // 2]
                b.inits[f"fc{i + 1}.weight"][:, gone] = 0
                b.inits[f"fc{i + 1}.bias"][gone] = 0
            h = b.node("Relu", [h])
    return b.model(["N", sizes[0]], h)


def parameter_count(model):
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)
