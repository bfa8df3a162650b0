"""ConvTranspose, LSTM, GRU and RNN against ONNX Runtime: models torch exports
(TorchScript exporter, opset 17) and single nodes built with onnx.helper for the attribute
forms torch does not write; and bad inputs that must raise KerfError instead of crashing the
process.

Tolerances: float32 rtol 1e-4 / atol 1e-5 (products sum in another order than ONNX Runtime's);
float16 atol 2e-3 (Kerf computes in float32 and rounds once)."""

import io

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import kerf
from kerf import KerfError, Status

torch = pytest.importorskip("torch")

F = TensorProto.FLOAT
rng = np.random.default_rng(17)


def normal(*shape, dtype=np.float32):
    return rng.normal(0, 1, shape).astype(dtype)


def model_of(op, inputs, attrs, outputs=("y",)):
    """One opset 17 `op` node; `inputs` is a list of (name, array) with None for an omitted
    optional input; `outputs` names the outputs, "" for an omitted one."""
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
                    for n, a in inputs if a is not None]
    node = helper.make_node(op, [n if a is not None else "" for n, a in inputs], list(outputs), **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info(n, F, None) for n in outputs if n])
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def onnxruntime_outputs(model, feeds):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_matches(model, feeds, want, what):
    with kerf.load_bytes(model.SerializeToString()) as m:
        got = m.session(threads=2).run(feeds)
    names = [o.name for o in model.graph.output]
    for name, w in zip(names, want):
        assert got[name].dtype == w.dtype, f"{what}: {name}"
        assert got[name].shape == w.shape, f"{what}: {name} {got[name].shape} vs {w.shape}"
        tolerance = dict(rtol=1e-4, atol=1e-5) if w.dtype != np.float16 else dict(rtol=1e-3, atol=2e-3)
        np.testing.assert_allclose(got[name].astype(np.float64), w.astype(np.float64), **tolerance, err_msg=f"{what}: {name}")


def check_node(op, inputs, attrs, outputs=("y",)):
    model = model_of(op, inputs, attrs, outputs)
    feeds = {n: a for n, a in inputs if a is not None}
    assert_matches(model, feeds, onnxruntime_outputs(model, feeds), op)


def exported(module, example, input_names=("x",)):
    """`module` as torch.onnx.export's TorchScript exporter writes it at opset 17."""
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), example, buffer, input_names=list(input_names), opset_version=17, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def check_exported(module, example, input_names=("x",)):
    model = exported(module, example, input_names)
    feeds = {n: t.numpy() for n, t in zip(input_names, example)}
    assert_matches(model, feeds, onnxruntime_outputs(model, feeds), type(module).__name__)
    return model


# MARK: ConvTranspose

TORCH_CONV_TRANSPOSE = [
    ("2d-stride2-pad1-outpad1", lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 5, 7)),
    ("2d-groups-dilation", lambda: torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=(2, 1), output_padding=(1, 2),
                                                            groups=2, dilation=(2, 3)), (1, 4, 6, 5)),
    ("2d-depthwise-no-bias", lambda: torch.nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, groups=8, bias=False), (2, 8, 9, 9)),
    ("2d-many-channels", lambda: torch.nn.ConvTranspose2d(32, 40, 2, stride=2), (1, 32, 12, 10)),
    ("1d", lambda: torch.nn.ConvTranspose1d(3, 5, 4, stride=2, padding=1), (2, 3, 11)),
    ("1d-groups-outpad", lambda: torch.nn.ConvTranspose1d(6, 9, 5, stride=3, padding=2, output_padding=2, groups=3), (3, 6, 7)),
    ("3d", lambda: torch.nn.ConvTranspose3d(2, 3, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), output_padding=(0, 1, 0)),
     (1, 2, 3, 4, 5)),
]


@pytest.mark.parametrize("case", TORCH_CONV_TRANSPOSE, ids=[c[0] for c in TORCH_CONV_TRANSPOSE])
def test_torch_conv_transpose_matches_onnxruntime(case):
    _, make, shape = case
    torch.manual_seed(0)
    model = check_exported(make(), (torch.randn(*shape),))
    assert [n.op_type for n in model.graph.node] == ["ConvTranspose"]


x33 = normal(2, 3, 5, 4)
w33 = normal(3, 2, 3, 3)
CONV_TRANSPOSE = [
    ("defaults", [("x", x33), ("w", w33)], {}),
    ("bias", [("x", x33), ("w", w33), ("b", normal(2))], {"strides": [2, 1]}),
    ("same-upper", [("x", x33), ("w", w33)], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("same-lower", [("x", x33), ("w", w33)], {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ("same-upper-output-padding", [("x", x33), ("w", w33)], {"auto_pad": "SAME_UPPER", "strides": [3, 2], "output_padding": [2, 1]}),
    ("valid", [("x", x33), ("w", w33)], {"auto_pad": "VALID", "strides": [2, 2]}),
    ("pads-asymmetric", [("x", x33), ("w", w33)], {"strides": [3, 2], "pads": [1, 0, 2, 2]}),
    ("output-shape", [("x", x33), ("w", w33)], {"strides": [2, 2], "output_shape": [9, 8]}),
    ("output-shape-odd-total", [("x", x33), ("w", w33)], {"strides": [2, 2], "output_shape": [10, 6]}),
    ("output-shape-larger", [("x", x33), ("w", w33)], {"strides": [3, 2], "output_shape": [16, 10]}),
    ("output-shape-same-upper", [("x", x33), ("w", w33)], {"strides": [2, 2], "output_shape": [10, 6], "auto_pad": "SAME_UPPER"}),
    ("output-shape-with-padding", [("x", x33), ("w", w33)], {"strides": [3, 3], "output_shape": [14, 11], "output_padding": [1, 2]}),
    ("dilations", [("x", x33), ("w", w33)], {"dilations": [2, 3], "pads": [1, 2, 0, 1]}),
    ("group-kernel-shape", [("x", normal(1, 4, 3, 3)), ("w", normal(4, 3, 2, 2)), ("b", normal(6))],
     {"group": 2, "kernel_shape": [2, 2], "strides": [2, 2]}),
    ("1d", [("x", normal(2, 3, 6)), ("w", normal(3, 4, 5))], {"strides": [3], "pads": [1, 2], "output_padding": [1]}),
    ("3d-group", [("x", normal(1, 4, 2, 3, 3)), ("w", normal(4, 1, 2, 2, 3)), ("b", normal(2))],
     {"group": 2, "strides": [2, 1, 2], "pads": [0, 1, 1, 1, 0, 0]}),
    ("4d-spatial", [("x", normal(1, 2, 2, 3, 2, 2)), ("w", normal(2, 2, 2, 2, 1, 2))], {"strides": [2, 1, 1, 2]}),
    ("batch-zero", [("x", normal(0, 3, 5, 4)), ("w", w33), ("b", normal(2))], {}),
    ("float16", [("x", normal(1, 3, 4, 4, dtype=np.float16)), ("w", normal(3, 2, 3, 3, dtype=np.float16))], {"strides": [2, 2]}),
]


@pytest.mark.parametrize("case", CONV_TRANSPOSE, ids=[c[0] for c in CONV_TRANSPOSE])
def test_conv_transpose_matches_onnxruntime(case):
    _, inputs, attrs = case
    model = model_of("ConvTranspose", inputs, attrs)
    if inputs[0][1].dtype == np.float16:
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    feeds = {n: a for n, a in inputs if a is not None}
    assert_matches(model, feeds, onnxruntime_outputs(model, feeds), "ConvTranspose")


def test_conv_transpose_double_matches_reference():
    inputs = [("x", normal(1, 2, 3, 4, dtype=np.float64)), ("w", normal(2, 3, 2, 3, dtype=np.float64)),
              ("b", normal(3, dtype=np.float64))]
    model = model_of("ConvTranspose", inputs, {"strides": [2, 2], "pads": [1, 0, 0, 1]})
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    feeds = dict(inputs)
    assert_matches(model, feeds, ReferenceEvaluator(model).run(None, feeds), "ConvTranspose double")


def test_conv_transpose_same_with_stride_past_kernel_follows_the_spec():
    """SAME with a stride larger than the kernel span: ONNX's output size is input · stride (the
    reference evaluator's, Kerf's); ONNX Runtime 1.31 writes the shorter unpadded output."""
    inputs = [("x", normal(1, 1, 3)), ("w", normal(1, 1, 1))]
    for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        model = model_of("ConvTranspose", inputs, {"strides": [3], "auto_pad": auto_pad})
        feeds = dict(inputs)
        assert_matches(model, feeds, ReferenceEvaluator(model).run(None, feeds), auto_pad)


w_bad = normal(3, 2, 3, 3)
BAD_CONV_TRANSPOSE = [
    ("group-divides-channels", [("x", normal(1, 3, 4, 4)), ("w", w_bad)], {"group": 2}, Status.SHAPE_MISMATCH, "group 2"),
    ("weight-channels", [("x", normal(1, 4, 4, 4)), ("w", w_bad)], {}, Status.SHAPE_MISMATCH, "W[0]"),
    ("weight-rank", [("x", normal(1, 3, 4, 4)), ("w", normal(3, 2, 3))], {}, Status.SHAPE_MISMATCH, "rank"),
    ("input-rank", [("x", normal(3, 4)), ("w", normal(3, 2))], {}, Status.SHAPE_MISMATCH, "rank"),
    ("bias-length", [("x", normal(1, 3, 4, 4)), ("w", w_bad), ("b", normal(3))], {}, Status.SHAPE_MISMATCH, "B"),
    ("output-padding-stride", [("x", normal(1, 3, 4, 4)), ("w", w_bad)], {"strides": [2, 2], "output_padding": [2, 0]},
     Status.INVALID_MODEL, "output_padding"),
    ("kernel-shape", [("x", normal(1, 3, 4, 4)), ("w", w_bad)], {"kernel_shape": [2, 2]}, Status.SHAPE_MISMATCH, "kernel_shape"),
    ("pads-empty-output", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"pads": [2, 2, 2, 2]}, Status.SHAPE_MISMATCH, "output size"),
    ("pads-length", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"pads": [1, 1]}, Status.INVALID_MODEL, "pads"),
    ("output-shape-length", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"output_shape": [4, 4, 4]}, Status.INVALID_MODEL,
     "output_shape"),
    ("strides-zero", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"strides": [0, 1]}, Status.INVALID_MODEL, "strides"),
    ("auto-pad", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"auto_pad": "SAME"}, Status.INVALID_MODEL, "auto_pad"),
    ("huge-stride", [("x", normal(1, 3, 2, 2)), ("w", w_bad)], {"strides": [2**62, 2**62]}, None, ""),
    ("integer-input", [("x", np.ones((1, 3, 2, 2), np.int32)), ("w", np.ones((3, 2, 3, 3), np.int32))], {}, Status.UNSUPPORTED,
     "float"),
]


@pytest.mark.parametrize("case", BAD_CONV_TRANSPOSE, ids=[c[0] for c in BAD_CONV_TRANSPOSE])
def test_bad_conv_transpose_raises(case):
    _, inputs, attrs, status, words = case
    model = model_of("ConvTranspose", inputs, attrs)
    with pytest.raises(KerfError) as failure:
        with kerf.load_bytes(model.SerializeToString()) as m:
            m.session(threads=1).run({n: a for n, a in inputs})
    if status is not None:
        assert failure.value.status == status, str(failure.value)
    assert words in failure.value.message
