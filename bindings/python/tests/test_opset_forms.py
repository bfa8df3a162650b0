"""The foundation ops in their older opset forms (attributes that later became inputs, changed
defaults, removed attributes), each checked against ONNX Runtime on the same model."""

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

import models

F, I64 = TensorProto.FLOAT, TensorProto.INT64
rng = np.random.default_rng(7)
X3 = rng.normal(0, 1, (2, 3, 4)).astype(np.float32)
X4 = rng.normal(0, 1, (2, 3, 6, 5)).astype(np.float32)
S1 = rng.normal(0, 1, (2, 1, 4)).astype(np.float32)


def i64(*values):
    return np.array(values, np.int64)


# (id, opset, op, {input name: array, "@name": constant initializer}, attributes, outputs (name, elem type))
CASES = [
    ("clip-attrs", 6, "Clip", {"x": X3}, {"min": -0.5, "max": 0.7}, [("y", F)]),
    ("clip-inputs", 11, "Clip", {"x": X3, "@lo": np.float32(-0.5), "@hi": np.float32(0.7)}, {}, [("y", F)]),
    ("clip-int", 13, "Clip", {"x": i64(-5, 0, 3, 9), "@lo": np.int64(-2), "@hi": np.int64(4)}, {}, [("y", I64)]),
    ("squeeze-attr", 11, "Squeeze", {"x": S1}, {"axes": [1]}, [("y", F)]),
    ("squeeze-input", 13, "Squeeze", {"x": S1, "@axes": i64(-2)}, {}, [("y", F)]),
    ("unsqueeze-attr", 11, "Unsqueeze", {"x": X3}, {"axes": [0, 4]}, [("y", F)]),
    ("unsqueeze-input", 13, "Unsqueeze", {"x": X3, "@axes": i64(-1, 1)}, {}, [("y", F)]),
    ("softmax-2d-coerced", 11, "Softmax", {"x": X3}, {"axis": 1}, [("y", F)]),
    ("softmax-axis", 13, "Softmax", {"x": X3}, {"axis": 1}, [("y", F)]),
    ("logsoftmax-2d-coerced", 11, "LogSoftmax", {"x": X3}, {}, [("y", F)]),
    ("logsoftmax-default", 13, "LogSoftmax", {"x": X3}, {}, [("y", F)]),
    ("reshape-input", 7, "Reshape", {"x": X3, "@s": i64(0, -1)}, {}, [("y", F)]),
    ("reshape-allowzero", 14, "Reshape", {"x": X3, "@s": i64(2, 0, -1)}, {"allowzero": 0}, [("y", F)]),
    ("dropout-attr", 7, "Dropout", {"x": X3}, {"ratio": 0.3}, [("y", F)]),
    ("dropout-mask", 10, "Dropout", {"x": X3}, {}, [("y", F), ("mask", TensorProto.BOOL)]),
    ("dropout-inputs", 13, "Dropout", {"x": X3, "@r": np.float32(0.2)}, {}, [("y", F)]),
    ("batchnorm-spatial", 7, "BatchNormalization",
     {"x": X4, "@s": rng.uniform(0.5, 1.5, 3).astype(np.float32), "@b": rng.normal(0, 1, 3).astype(np.float32),
      "@m": rng.normal(0, 1, 3).astype(np.float32), "@v": rng.uniform(0.5, 2, 3).astype(np.float32)},
     {"spatial": 1, "epsilon": 1e-3}, [("y", F)]),
    ("batchnorm-15", 15, "BatchNormalization",
     {"x": X4, "@s": np.ones(3, np.float32), "@b": np.zeros(3, np.float32),
      "@m": rng.normal(0, 1, 3).astype(np.float32), "@v": rng.uniform(0.5, 2, 3).astype(np.float32)}, {}, [("y", F)]),
    ("maxpool-indices", 8, "MaxPool", {"x": X4}, {"kernel_shape": [2, 2], "strides": [2, 2]}, [("y", F), ("i", I64)]),
    ("maxpool-ceil", 10, "MaxPool", {"x": X4}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, [("y", F)]),
    ("maxpool-dilated", 12, "MaxPool", {"x": X4}, {"kernel_shape": [2, 2], "dilations": [2, 1], "pads": [1, 0, 1, 1]}, [("y", F)]),
    ("maxpool-colmajor", 12, "MaxPool", {"x": X4}, {"kernel_shape": [2, 2], "storage_order": 1}, [("y", F), ("i", I64)]),
    ("avgpool-pad", 7, "AveragePool", {"x": X4}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}, [("y", F)]),
    ("avgpool-ceil", 10, "AveragePool", {"x": X4}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, [("y", F)]),
    ("avgpool-same", 11, "AveragePool", {"x": X4}, {"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER"}, [("y", F)]),
    ("avgpool-dilated", 19, "AveragePool", {"x": X4}, {"kernel_shape": [2, 2], "dilations": [2, 2]}, [("y", F)]),
    ("gemm-c-required", 7, "Gemm", {"a": rng.normal(0, 1, (4, 3)).astype(np.float32), "@b": rng.normal(0, 1, (5, 3)).astype(np.float32),
                                     "@c": rng.normal(0, 1, (5,)).astype(np.float32)}, {"transB": 1, "alpha": 0.5, "beta": 2.0}, [("y", F)]),
    ("gemm-no-c", 11, "Gemm", {"a": rng.normal(0, 1, (3, 4)).astype(np.float32), "@b": rng.normal(0, 1, (3, 5)).astype(np.float32)},
     {"transA": 1}, [("y", F)]),
    ("concat-7", 7, "Concat", {"x": X3, "x2": X3}, {"axis": 2}, [("y", F)]),
    ("concat-negative", 11, "Concat", {"x": X3, "x2": X3}, {"axis": -3}, [("y", F)]),
    ("flatten-9", 9, "Flatten", {"x": X4}, {"axis": 2}, [("y", F)]),
    ("flatten-negative", 11, "Flatten", {"x": X4}, {"axis": -1}, [("y", F)]),
    ("gather-7", 7, "Gather", {"x": X3, "@i": i64(1, 0, 1)}, {"axis": 1}, [("y", F)]),
    ("gather-negative", 11, "Gather", {"x": X3, "@i": i64(-1, 0)}, {"axis": -1}, [("y", F)]),
    ("sum-broadcast", 8, "Sum", {"x": X3, "x2": S1[:, :, :1], "x3": X3}, {}, [("y", F)]),
    ("add-7", 7, "Add", {"x": X3, "x2": S1}, {}, [("y", F)]),
    ("div-int", 14, "Div", {"x": i64(7, -7, 9), "x2": i64(2, 2, -4)}, {}, [("y", I64)]),
    ("leakyrelu-7", 7, "LeakyRelu", {"x": X3}, {"alpha": 0.2}, [("y", F)]),
    ("transpose-7", 7, "Transpose", {"x": X3}, {"perm": [2, 0, 1]}, [("y", F)]),
    ("conv-7", 7, "Conv", {"x": X4, "@w": rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32)}, {"pads": [1, 1, 1, 1], "strides": [2, 1]}, [("y", F)]),
    ("conv-depthwise", 11, "Conv", {"x": X4, "@w": rng.normal(0, 1, (3, 1, 3, 3)).astype(np.float32), "@b": np.ones(3, np.float32)},
     {"group": 3, "auto_pad": "SAME_LOWER"}, [("y", F)]),
    ("lrn-7", 7, "LRN", {"x": X4}, {"size": 3, "alpha": 1e-3, "beta": 0.6, "bias": 2.0}, [("y", F)]),
    ("shape-7", 7, "Shape", {"x": X4}, {}, [("y", I64)]),
    ("shape-slice", 15, "Shape", {"x": X4}, {"start": 1, "end": -1}, [("y", I64)]),
    ("constantofshape-9", 9, "ConstantOfShape", {"@s": i64(2, 3)},
     {"value": numpy_helper.from_array(np.array([1.5], np.float32))}, [("y", F)]),
    ("constant-value-float", 12, "Constant", {}, {"value_floats": [1.0, 2.5]}, [("y", F)]),
    ("identity-7", 7, "Identity", {"x": X3}, {}, [("y", F)]),
    ("relu-7", 7, "Relu", {"x": X3}, {}, [("y", F)]),
    ("sigmoid-7", 7, "Sigmoid", {"x": X3}, {}, [("y", F)]),
    ("tanh-7", 7, "Tanh", {"x": X3}, {}, [("y", F)]),
    ("globalavgpool-7", 7, "GlobalAveragePool", {"x": X4}, {}, [("y", F)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_onnxruntime(case):
    _, opset, op, inputs, attrs, outputs = case
    models.check_single_op(opset, op, inputs, attrs, outputs)
