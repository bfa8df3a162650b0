"""Models in the op patterns PyTorch exports, built with onnx.helper (no torch needed):
a BERT-style encoder as `torch.onnx.export` writes it at opset 14, and a MobileNet-style CNN.
Shared by the tests and scripts/bench.py."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8


class _Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="c"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def weight(self, shape, scale, prefix="w"):
        return self.const(self.rng.normal(0, scale, shape).astype(np.float32), prefix)

    def op(self, op_type, inputs, outputs=1, **attrs):
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if outputs == 1 else names


def _layer_norm(b, x, hidden):
    """LayerNorm decomposed the way torch.onnx exports it before opset 17."""
    mean = b.op("ReduceMean", [x], axes=[-1])
    centered = b.op("Sub", [x, mean])
    variance = b.op("ReduceMean", [b.op("Pow", [centered, b.const(np.float32(2))])], axes=[-1])
    std = b.op("Sqrt", [b.op("Add", [variance, b.const(np.float32(1e-12))])])
    normalized = b.op("Div", [centered, std])
    gamma = b.const((1 + b.rng.normal(0, 0.1, hidden)).astype(np.float32), "ln_gamma")
    beta = b.const(b.rng.normal(0, 0.1, hidden).astype(np.float32), "ln_beta")
    return b.op("Add", [b.op("Mul", [normalized, gamma]), beta])


def _linear(b, x, n_in, n_out):
    return b.op("Add", [b.op("MatMul", [x, b.weight((n_in, n_out), 1 / np.sqrt(n_in))]),
                        b.const(b.rng.normal(0, 0.02, n_out).astype(np.float32), "bias")])


def _dim(b, x, index):
    """Shape(x)[index] as a 1-element int64 tensor (Shape -> Gather -> Unsqueeze)."""
    return b.op("Unsqueeze", [b.op("Gather", [b.op("Shape", [x]), b.const(np.int64(index))], axis=0), b.const(np.array([0], np.int64))])


def bert_encoder(layers=2, hidden=256, heads=4, ffn=1024, vocab=1000, max_positions=512, seed=0):
    """input_ids, attention_mask: int64 [batch, sequence] -> last_hidden_state float [batch, sequence, hidden]."""
    b = _Builder(seed)
    head = hidden // heads
    words = b.op("Gather", [b.weight((vocab, hidden), 0.5, "word_embeddings"), "input_ids"])
    # Position ids: a constant [1, max_positions] buffer sliced to the sequence length.
    sequence = _dim(b, "input_ids", 1)
    position_ids = b.op("Slice", [b.const(np.arange(max_positions, dtype=np.int64)[None, :], "position_ids"),
                                  b.const(np.array([0], np.int64)), sequence, b.const(np.array([1], np.int64))])
    positions = b.op("Gather", [b.weight((max_positions, hidden), 0.5, "position_embeddings"), position_ids])
    token_types = b.op("Gather", [b.weight((2, hidden), 0.5, "token_type_embeddings"),
                                  b.op("ConstantOfShape", [b.op("Shape", ["input_ids"])],
                                       value=numpy_helper.from_array(np.array([0], np.int64)))])
    x = _layer_norm(b, b.op("Add", [b.op("Add", [words, positions]), token_types]), hidden)
    # Extended attention mask: (1 - mask[:, None, None, :]) * -10000.
    mask = b.op("Unsqueeze", [b.op("Unsqueeze", ["attention_mask", b.const(np.array([1], np.int64))]), b.const(np.array([2], np.int64))])
    mask = b.op("Cast", [mask], to=TensorProto.FLOAT)
    mask_bias = b.op("Mul", [b.op("Sub", [b.const(np.float32(1.0)), mask]), b.const(np.float32(-10000.0))])
    for _ in range(layers):
        batch, seq = _dim(b, x, 0), _dim(b, x, 1)
        heads_shape = b.op("Concat", [batch, seq, b.const(np.array([heads], np.int64)), b.const(np.array([head], np.int64))], axis=0)

        def split_heads(t, perm):
            return b.op("Transpose", [b.op("Reshape", [t, heads_shape])], perm=perm)

        q = split_heads(_linear(b, x, hidden, hidden), [0, 2, 1, 3])
        k = split_heads(_linear(b, x, hidden, hidden), [0, 2, 3, 1])
        v = split_heads(_linear(b, x, hidden, hidden), [0, 2, 1, 3])
        scores = b.op("Add", [b.op("Div", [b.op("MatMul", [q, k]), b.const(np.float32(np.sqrt(head)))]), mask_bias])
        context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        merged_shape = b.op("Concat", [batch, seq, b.const(np.array([hidden], np.int64))], axis=0)
        context = b.op("Reshape", [b.op("Transpose", [context], perm=[0, 2, 1, 3]), merged_shape])
        x = _layer_norm(b, b.op("Add", [_linear(b, context, hidden, hidden), x]), hidden)
        # GELU as torch exports it: x * 0.5 * (1 + erf(x / sqrt(2))).
        h = _linear(b, x, hidden, ffn)
        erf = b.op("Erf", [b.op("Div", [h, b.const(np.float32(np.sqrt(2.0)))])])
        gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, b.const(np.float32(1.0))])]), b.const(np.float32(0.5))])
        x = _layer_norm(b, b.op("Add", [_linear(b, gelu, ffn, hidden), x]), hidden)
    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        b.nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        b.inits)
    return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", 14)],
                             producer_name="kerf-tests (torch.onnx.export op pattern)")


def bert_feeds(batch, sequence, vocab=1000, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, sequence), np.int64)
    for row in range(batch):  # right padding of different lengths
        mask[row, sequence - row * max(1, sequence // 8):] = 0 if row else 1
    return {"input_ids": rng.integers(0, vocab, (batch, sequence), dtype=np.int64), "attention_mask": mask}


def mobilenet_like(size=32, classes=10, seed=0):
    """image [N, 3, size, size] -> stem Conv/BN/ReLU6 -> 3 inverted-residual-style blocks
    (pointwise expand, depthwise 3x3, pointwise project; Clip as ReLU6 and HardSwish) ->
    GlobalAveragePool -> Flatten -> Gemm -> logits [N, classes]."""
    b = _Builder(seed)

    def conv_bn(x, c_in, c_out, k, stride=1, group=1):
        w = b.weight((c_out, c_in // group, k, k), np.sqrt(2 / (c_in // group * k * k)))
        y = b.op("Conv", [x, w], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
        return b.op("BatchNormalization", [y, b.const(b.rng.uniform(0.5, 1.5, c_out).astype(np.float32)),
                                           b.const(b.rng.normal(0, 0.1, c_out).astype(np.float32)),
                                           b.const(b.rng.normal(0, 0.1, c_out).astype(np.float32)),
                                           b.const(b.rng.uniform(0.5, 2, c_out).astype(np.float32))], epsilon=1e-5)

    def relu6(x):
        return b.op("Clip", [x, b.const(np.float32(0)), b.const(np.float32(6))])

    x = relu6(conv_bn("image", 3, 16, 3, stride=2))
    c = 16
    for i, (expand, out, stride) in enumerate([(4, 24, 2), (4, 24, 1), (4, 32, 2)]):
        hidden = c * expand
        h = relu6(conv_bn(x, c, hidden, 1))
        h = b.op("HardSwish", [conv_bn(h, hidden, hidden, 3, stride=stride, group=hidden)])
        h = conv_bn(h, hidden, out, 1)
        x = b.op("Add", [x, h]) if stride == 1 and out == c else h
        c = out
    pooled = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    logits = b.op("Gemm", [pooled, b.weight((classes, c), 0.3), b.const(np.zeros(classes, np.float32))], transB=1)
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="output"))
    graph = helper.make_graph(b.nodes, "mobilenet_like",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], b.inits)
    return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", 14)])
