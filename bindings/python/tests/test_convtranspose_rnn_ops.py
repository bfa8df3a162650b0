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



class UNetBlock(torch.nn.Module):
    """Conv down, ConvTranspose up and a skip connection: ConvTranspose between the NHWC Conv
    chains the optimizer forms (and a Relu it may not fuse into ConvTranspose)."""

    def __init__(self):
        super().__init__()
        self.down = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = torch.nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
        self.head = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.up(torch.relu(self.down(x)))) + x)


class SpeechBlock(torch.nn.Module):
    """Conv1d features into a bidirectional LSTM and a linear head, as speech models stack them."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv1d(6, 10, 3, padding=1)
        self.lstm = torch.nn.LSTM(10, 12, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(24, 5)

    def forward(self, x):
        y, _ = self.lstm(torch.relu(self.features(x)).transpose(1, 2))
        return self.head(y)


@pytest.mark.parametrize("block, shape", [(UNetBlock, (2, 3, 16, 12)), (SpeechBlock, (3, 6, 20))], ids=["unet", "speech"])
def test_torch_blocks_match_onnxruntime(block, shape):
    torch.manual_seed(2)
    check_exported(block(), (torch.randn(*shape),))

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


# MARK: LSTM, GRU, RNN

class Stacked(torch.nn.Module):
    """A torch recurrent layer taking its initial states as separate inputs (h0[, c0]) and
    returning its output and last states as separate outputs."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, *state):
        if state:
            y, last = self.layer(x, tuple(state) if isinstance(self.layer, torch.nn.LSTM) else state[0])
        else:
            y, last = self.layer(x)
        return (y, *last) if isinstance(last, tuple) else (y, last)


TORCH_RECURRENT = [
    ("lstm-bidirectional-2-layers-batch-first", lambda: torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
     (3, 6, 5), False),
    ("lstm-initial-states", lambda: torch.nn.LSTM(4, 6, num_layers=2), (5, 2, 4), True),
    ("gru-bidirectional-2-layers-batch-first", lambda: torch.nn.GRU(5, 8, num_layers=2, bidirectional=True, batch_first=True),
     (2, 7, 5), False),
    ("gru-initial-state", lambda: torch.nn.GRU(3, 4, bidirectional=True), (6, 3, 3), True),
    ("rnn-tanh-bidirectional-batch-first", lambda: torch.nn.RNN(4, 6, num_layers=3, bidirectional=True, batch_first=True),
     (2, 5, 4), False),
    ("rnn-relu", lambda: torch.nn.RNN(4, 5, num_layers=2, nonlinearity="relu"), (6, 3, 4), True),
]


@pytest.mark.parametrize("case", TORCH_RECURRENT, ids=[c[0] for c in TORCH_RECURRENT])
def test_torch_recurrent_matches_onnxruntime(case):
    name, make, shape, with_state = case
    torch.manual_seed(1)
    layer = make()
    tensors, names = [torch.randn(*shape)], ["x", "h0", "c0"]
    if with_state:
        batch = shape[0] if layer.batch_first else shape[1]
        state = torch.randn(layer.num_layers * (2 if layer.bidirectional else 1), batch, layer.hidden_size)
        tensors += [state, state * 0.5] if isinstance(layer, torch.nn.LSTM) else [state]
    model = exported(Stacked(layer), tuple(tensors), names[:len(tensors)])
    feeds = {n: t.numpy() for n, t in zip(names, tensors)}
    assert_matches(model, feeds, onnxruntime_outputs(model, feeds), name)
    op = type(layer).__name__
    assert sum(n.op_type == op for n in model.graph.node) == layer.num_layers


def recurrent_inputs(op, steps=4, batch=3, input_size=5, hidden=6, directions=1, bias=True, lengths=None, initial=False,
                     peepholes=False):
    """(name, array) inputs of an `op` node in layout 0, None for the omitted ones."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    state = normal(directions, batch, hidden) if initial else None
    inputs = [("x", normal(steps, batch, input_size)), ("w", normal(directions, gates * hidden, input_size) * 0.5),
              ("r", normal(directions, gates * hidden, hidden) * 0.5), ("b", normal(directions, 2 * gates * hidden) if bias else None),
              ("lens", None if lengths is None else np.array(lengths, np.int32)), ("h0", state)]
    if op == "LSTM":
        inputs += [("c0", normal(directions, batch, hidden) if initial else None), ("p", normal(directions, 3 * hidden) if peepholes else None)]
    while inputs[-1][1] is None:
        inputs.pop()
    return inputs


def recurrent_outputs(op):
    return ("y", "y_h", "y_c") if op == "LSTM" else ("y", "y_h")


RECURRENT = [
    ("rnn-forward", "RNN", {}, {}),
    ("rnn-reverse-no-bias", "RNN", {"direction": "reverse"}, {"bias": False}),
    ("rnn-bidirectional-lengths", "RNN", {"direction": "bidirectional"}, {"directions": 2, "lengths": [4, 2, 0], "initial": True}),
    ("rnn-activations", "RNN", {"direction": "bidirectional", "activations": ["LeakyRelu", "ScaledTanh"],
                                "activation_alpha": [0.3, 0.8], "activation_beta": [1.5]}, {"directions": 2}),
    ("rnn-clip-relu", "RNN", {"activations": ["Relu"], "clip": 0.7}, {}),
    ("gru-forward", "GRU", {}, {}),
    ("gru-linear-before-reset", "GRU", {"linear_before_reset": 1}, {"initial": True}),
    ("gru-reverse-lengths", "GRU", {"direction": "reverse"}, {"lengths": [1, 4, 3]}),
    ("gru-bidirectional-lbr-lengths", "GRU", {"direction": "bidirectional", "linear_before_reset": 1},
     {"directions": 2, "lengths": [3, 0, 4], "initial": True}),
    ("gru-activations-clip", "GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.4],
                                     "clip": 1.5}, {}),
    ("lstm-forward", "LSTM", {}, {}),
    ("lstm-peepholes-initial", "LSTM", {}, {"peepholes": True, "initial": True}),
    ("lstm-reverse-lengths-peepholes", "LSTM", {"direction": "reverse"}, {"lengths": [2, 4, 1], "peepholes": True, "initial": True}),
    ("lstm-bidirectional-lengths", "LSTM", {"direction": "bidirectional"},
     {"directions": 2, "lengths": [4, 0, 3], "initial": True, "peepholes": True}),
    ("lstm-input-forget", "LSTM", {"input_forget": 1}, {"initial": True}),
    ("lstm-activations-clip", "LSTM", {"activations": ["HardSigmoid", "Elu", "Softplus"], "activation_alpha": [0.25, 0.9],
                                       "activation_beta": [0.45], "clip": 2.0}, {}),
    ("lstm-activations-bidirectional", "LSTM", {"direction": "bidirectional", "activations": [
        "Sigmoid", "Affine", "ThresholdedRelu", "Sigmoid", "Tanh", "Relu"], "activation_alpha": [0.7, 0.2],
        "activation_beta": [0.1]}, {"directions": 2}),
    ("lstm-hidden-1", "LSTM", {}, {"hidden": 1, "batch": 1, "steps": 1}),
]


@pytest.mark.parametrize("case", RECURRENT, ids=[c[0] for c in RECURRENT])
def test_recurrent_matches_onnxruntime(case):
    _, op, attrs, sizes = case
    inputs = recurrent_inputs(op, **sizes)
    hidden = inputs[2][1].shape[-1]
    check_node(op, inputs, {"hidden_size": hidden, **attrs}, recurrent_outputs(op))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_batch_first_layout_matches_onnxruntime_on_transposed_inputs(op):
    """layout 1 (ONNX Runtime has no batch-first kernels): Kerf's batch-first outputs equal ONNX
    Runtime's layout 0 outputs on the transposed inputs, transposed back."""
    inputs = recurrent_inputs(op, directions=2, lengths=[4, 1, 3], initial=True, peepholes=True)
    attrs = {"hidden_size": 6, "direction": "bidirectional"}
    want = onnxruntime_outputs(model_of(op, inputs, attrs, recurrent_outputs(op)), {n: a for n, a in inputs if a is not None})
    batch_first = [(n, None if a is None else a.transpose(1, 0, 2) if n in ("x", "h0", "c0") else a) for n, a in inputs]
    model = model_of(op, batch_first, {**attrs, "layout": 1}, recurrent_outputs(op))
    expected = [want[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want[1:]]
    assert_matches(model, {n: a for n, a in batch_first if a is not None}, expected, f"{op} layout 1")


def test_omitted_y_output():
    inputs = recurrent_inputs("LSTM", initial=True)
    check_node("LSTM", inputs, {"hidden_size": 6}, ("", "y_h", "y_c"))


def test_float16_recurrent_matches_float32():
    inputs = recurrent_inputs("GRU", directions=2, initial=True)
    half = [(n, None if a is None else a.astype(np.float16)) for n, a in inputs]
    attrs = {"hidden_size": 6, "direction": "bidirectional"}
    model = model_of("GRU", half, attrs, ("y", "y_h"))
    for o in model.graph.output:
        o.type.tensor_type.elem_type = TensorProto.FLOAT16
    widened = [(n, None if a is None else a.astype(np.float32)) for n, a in half]
    want = onnxruntime_outputs(model_of("GRU", widened, attrs, ("y", "y_h")), {n: a for n, a in widened if a is not None})
    assert_matches(model, {n: a for n, a in half if a is not None}, [w.astype(np.float16) for w in want], "GRU float16")


def bad_recurrent(op, attrs, sizes=None, edit=None):
    inputs = recurrent_inputs(op, **(sizes or {}))
    if edit:
        inputs = edit(inputs)
    return inputs, {"hidden_size": 6, **attrs}


def replaced(name, value):
    return lambda inputs: [(n, value if n == name else a) for n, a in inputs]


BAD_RECURRENT = [
    ("weight-shape", "LSTM", *bad_recurrent("LSTM", {}, edit=replaced("w", normal(1, 20, 5))), Status.SHAPE_MISMATCH, "W"),
    ("hidden-size", "GRU", *bad_recurrent("GRU", {"hidden_size": 5}), Status.SHAPE_MISMATCH, "R"),
    ("directions", "RNN", *bad_recurrent("RNN", {"direction": "bidirectional"}), Status.SHAPE_MISMATCH, "R"),
    ("bias-shape", "RNN", *bad_recurrent("RNN", {}, edit=replaced("b", normal(1, 6))), Status.SHAPE_MISMATCH, "B"),
    ("initial-state", "GRU", *bad_recurrent("GRU", {}, {"initial": True}, edit=replaced("h0", normal(1, 2, 6))), Status.SHAPE_MISMATCH,
     "initial_h"),
    ("peepholes", "LSTM", *bad_recurrent("LSTM", {}, {"peepholes": True}, edit=replaced("p", normal(1, 12))), Status.SHAPE_MISMATCH, "P"),
    ("lengths-range", "RNN", *bad_recurrent("RNN", {}, {"lengths": [5, 1, 1]}), Status.INVALID_ARGUMENT, "sequence_lens"),
    ("lengths-negative", "LSTM", *bad_recurrent("LSTM", {}, {"lengths": [-1, 1, 1]}), Status.INVALID_ARGUMENT, "sequence_lens"),
    ("lengths-shape", "GRU", *bad_recurrent("GRU", {}, {"lengths": [1, 1]}), Status.SHAPE_MISMATCH, "sequence_lens"),
    ("x-rank", "RNN", *bad_recurrent("RNN", {}, edit=replaced("x", normal(4, 3, 5, 1))), Status.SHAPE_MISMATCH, "rank 3"),
    ("direction", "LSTM", *bad_recurrent("LSTM", {"direction": "sideways"}), Status.INVALID_MODEL, "direction"),
    ("layout", "GRU", *bad_recurrent("GRU", {"layout": 2}), Status.INVALID_MODEL, "layout"),
    ("activation-name", "RNN", *bad_recurrent("RNN", {"activations": ["Swish"]}), Status.UNSUPPORTED, "Swish"),
    ("activation-count", "LSTM", *bad_recurrent("LSTM", {"activations": ["Sigmoid", "Tanh"]}), Status.INVALID_MODEL, "activations"),
    ("clip", "LSTM", *bad_recurrent("LSTM", {"clip": -1.0}), Status.INVALID_MODEL, "clip"),
    ("hidden-size-zero", "RNN", *bad_recurrent("RNN", {"hidden_size": 0}), Status.INVALID_MODEL, "hidden_size"),
    ("integer-x", "RNN", *bad_recurrent("RNN", {}, edit=replaced("x", np.ones((4, 3, 5), np.int32))), Status.UNSUPPORTED, "float"),
]


@pytest.mark.parametrize("case", BAD_RECURRENT, ids=[c[0] for c in BAD_RECURRENT])
def test_bad_recurrent_raises(case):
    _, op, inputs, attrs, status, words = case
    model = model_of(op, inputs, attrs, recurrent_outputs(op))
    with pytest.raises(KerfError) as failure:
        with kerf.load_bytes(model.SerializeToString()) as m:
            m.session(threads=1).run({n: a for n, a in inputs if a is not None})
    assert failure.value.status == status, str(failure.value)
    assert words in failure.value.message
