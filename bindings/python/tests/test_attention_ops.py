"""ONNX Attention (opset 23/24), RotaryEmbedding and RMSNormalization (opset 23) against ONNX
Runtime (onnx's reference evaluator where ONNX Runtime refuses a model) on small random models:
grouped-query heads, causal masking, bool and float masks, a KV cache with present outputs,
soft-capping, the qk_matmul_output modes, 3-D inputs, float16; and bad inputs that must raise
KerfError instead of crashing the process.

Tolerances: float32 rtol 1e-4 / atol 1e-5 (the products sum in another order than ONNX
Runtime's); float16 atol 2e-3 (Kerf computes in float32 and rounds once, ONNX Runtime rounds
intermediate results)."""

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import kerf
from kerf import KerfError, Status

F, H, B = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BOOL
rng = np.random.default_rng(23)


def normal(*shape, dtype=np.float32):
    return rng.normal(0, 1, shape).astype(dtype)


def model_of(opset, op, inputs, attrs, outputs):
    """One `op` node; `inputs` is a list of (name, array) with None for an omitted optional
    input; `outputs` lists (name, elem type), "" for an omitted one. IR 10 (ONNX Runtime 1.3x
    reads it; opset 23 needs more than IR 8)."""
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
                    for n, a in inputs if a is not None]
    node = helper.make_node(op, [n if a is not None else "" for n, a in inputs], [n for n, _ in outputs], **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info(n, t, None) for n, t in outputs if n])
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", opset)])


def expected_outputs(model, feeds):
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # an op or attribute this ONNX Runtime does not implement
        return ReferenceEvaluator(model).run(None, feeds)
    return session.run(None, feeds)


def check(opset, op, inputs, attrs, outputs):
    model = model_of(opset, op, inputs, attrs, outputs)
    feeds = {n: a for n, a in inputs if a is not None}
    want = expected_outputs(model, feeds)
    with kerf.load_bytes(model.SerializeToString()) as m:
        got = m.session(threads=2).run(feeds)
    names = [n for n, _ in outputs if n]
    for name, w in zip(names, want):
        assert got[name].dtype == w.dtype, name
        assert got[name].shape == w.shape, name
        tolerance = dict(rtol=1e-4, atol=1e-5) if w.dtype == np.float32 else dict(rtol=1e-3, atol=2e-3)
        np.testing.assert_allclose(got[name].astype(np.float32), w.astype(np.float32), **tolerance, err_msg=f"{op} output {name}")


def qkv(batch, q_heads, kv_heads, s, t, dk, dv=None, dtype=np.float32):
    return normal(batch, q_heads, s, dk, dtype=dtype), normal(batch, kv_heads, t, dk, dtype=dtype), \
        normal(batch, kv_heads, t, dv or dk, dtype=dtype)


Y = [("y", F)]
PRESENT = [("y", F), ("present_key", F), ("present_value", F)]
ALL = PRESENT + [("qk", F)]

q4, k4, v4 = qkv(2, 3, 3, 4, 6, 8)
qg, kg, vg = qkv(2, 6, 2, 5, 5, 8, dv=4)
qp, kp, vp = qkv(1, 4, 2, 3, 3, 8)
past_k, past_v = normal(1, 2, 5, 8), normal(1, 2, 5, 8)
q3, k3, v3 = normal(2, 4, 18), normal(2, 6, 6), normal(2, 6, 10)  # 6 query heads, 2 key/value heads, head sizes 3 and 5

ATTENTION = [
    ("4d", 23, [("q", q4), ("k", k4), ("v", v4)], {}, Y),
    ("4d-scaled-softcap", 23, [("q", q4 * 3), ("k", k4), ("v", v4)], {"scale": 0.5, "softcap": 2.0}, Y),
    ("gqa-causal", 23, [("q", qg), ("k", kg), ("v", vg)], {"is_causal": 1}, Y),
    ("gqa-float-mask-2d", 23, [("q", qg), ("k", kg), ("v", vg), ("m", normal(5, 5))], {}, Y),
    ("bool-mask-4d", 23, [("q", q4), ("k", k4), ("v", v4), ("m", rng.random((2, 3, 4, 6)) < 0.7)], {}, Y),
    ("past-kv-causal", 23, [("q", qp), ("k", kp), ("v", vp), ("m", None), ("pk", past_k), ("pv", past_v)], {"is_causal": 1},
     PRESENT),
    ("past-kv-mask-scores", 23, [("q", qp), ("k", kp), ("v", vp), ("m", normal(3, 8)), ("pk", past_k), ("pv", past_v)], {}, ALL),
    ("past-kv-biased-scores", 23, [("q", qp), ("k", kp), ("v", vp), ("m", normal(1, 4, 3, 8)), ("pk", past_k), ("pv", past_v)],
     {"qk_matmul_output_mode": 2}, ALL),
    ("probabilities", 23, [("q", q4), ("k", k4), ("v", v4), ("m", normal(4, 6))], {"qk_matmul_output_mode": 3},
     [("y", F), ("", F), ("", F), ("qk", F)]),
    ("3d-gqa-causal", 23, [("q", q3), ("k", k3), ("v", v3)], {"q_num_heads": 6, "kv_num_heads": 2, "is_causal": 1}, Y),
    ("3d-past", 23, [("q", q3[:1, :2]), ("k", k3[:1, :2]), ("v", v3[:1, :2]), ("m", None), ("pk", normal(1, 2, 4, 3)),
                     ("pv", normal(1, 2, 4, 5))], {"q_num_heads": 6, "kv_num_heads": 2}, PRESENT),
    ("float16-gqa-causal", 23, [(n, a.astype(np.float16)) for n, a in [("q", qg), ("k", kg), ("v", vg)]], {"is_causal": 1},
     [("y", H)]),
    ("nonpad-kv-seqlen", 24, [("q", q4[:, :, :1]), ("k", k4), ("v", v4), ("m", None), ("pk", None), ("pv", None),
                              ("n", np.array([4, 6], np.int64))], {"is_causal": 1}, Y),
]


@pytest.mark.parametrize("case", ATTENTION, ids=[c[0] for c in ATTENTION])
def test_attention_matches_onnxruntime(case):
    _, opset, inputs, attrs, outputs = case
    check(opset, "Attention", inputs, attrs, outputs)


def test_fully_masked_row_gives_zeros():
    mask = np.ones((4, 6), bool)
    mask[1] = False
    model = model_of(23, "Attention", [("q", q4), ("k", k4), ("v", v4), ("m", mask)], {}, Y)
    with kerf.load_bytes(model.SerializeToString()) as m:
        y = m.session().run({"q": q4, "k": k4, "v": v4, "m": mask})["y"]
    assert np.all(y[:, :, 1] == 0) and np.all(np.isfinite(y))


x4 = normal(2, 3, 5, 8)  # [batch, heads, sequence, head]
cos_cache, sin_cache = np.cos(normal(10, 4)), np.sin(normal(10, 4))
positions = rng.integers(0, 10, (2, 5)).astype(np.int64)

ROTARY = [
    ("4d-positions", [("x", x4), ("c", cos_cache), ("s", sin_cache), ("p", positions)], {}),
    ("4d-interleaved", [("x", x4), ("c", cos_cache), ("s", sin_cache), ("p", positions)], {"interleaved": 1}),
    ("3d-rotary-dim", [("x", normal(2, 5, 24)), ("c", cos_cache[:, :2]), ("s", sin_cache[:, :2]), ("p", positions)],
     {"num_heads": 3, "rotary_embedding_dim": 4}),
    ("no-positions-interleaved-dim", [("x", x4), ("c", np.cos(normal(2, 5, 3))), ("s", np.sin(normal(2, 5, 3)))],
     {"interleaved": 1, "rotary_embedding_dim": 6}),
    ("float16", [(n, a.astype(np.float16) if a.dtype == np.float32 else a)
                 for n, a in [("x", x4), ("c", cos_cache), ("s", sin_cache), ("p", positions)]], {}),
]


@pytest.mark.parametrize("case", ROTARY, ids=[c[0] for c in ROTARY])
def test_rotary_embedding_matches_onnxruntime(case):
    _, inputs, attrs = case
    check(23, "RotaryEmbedding", inputs, attrs, [("y", H if inputs[0][1].dtype == np.float16 else F)])


RMS = [
    ("last-axis", [("x", normal(3, 4, 16)), ("w", normal(16))], {}),
    ("axis1-epsilon", [("x", normal(3, 4, 5)), ("w", normal(4, 5))], {"axis": 1, "epsilon": 0.1}),
    ("broadcast-scale", [("x", normal(2, 3, 4, 5)), ("w", normal(1, 5))], {"axis": -2}),
    ("float16", [("x", normal(4, 32, dtype=np.float16)), ("w", normal(32, dtype=np.float16))], {}),
]


@pytest.mark.parametrize("case", RMS, ids=[c[0] for c in RMS])
def test_rms_normalization_matches_onnxruntime(case):
    _, inputs, attrs = case
    check(23, "RMSNormalization", inputs, attrs, [("y", H if inputs[0][1].dtype == np.float16 else F)])


# Bad inputs: each raises KerfError with the status and a message naming the problem.

BAD = [
    ("attention-heads", "Attention", [("q", normal(1, 5, 2, 4)), ("k", normal(1, 2, 3, 4)), ("v", normal(1, 2, 3, 4))], {},
     Status.SHAPE_MISMATCH, "not a multiple"),
    ("attention-head-size", "Attention", [("q", normal(1, 2, 2, 4)), ("k", normal(1, 2, 3, 5)), ("v", normal(1, 2, 3, 4))], {},
     Status.SHAPE_MISMATCH, "head size"),
    ("attention-3d-without-heads", "Attention", [("q", normal(1, 2, 8)), ("k", normal(1, 3, 8)), ("v", normal(1, 3, 8))], {},
     Status.INVALID_MODEL, "q_num_heads"),
    ("attention-mask-shape", "Attention", [("q", q4), ("k", k4), ("v", v4), ("m", normal(3, 6))], {},
     Status.SHAPE_MISMATCH, "attn_mask"),
    ("rotary-position", "RotaryEmbedding", [("x", x4), ("c", cos_cache), ("s", sin_cache), ("p", np.full((2, 5), 10, np.int64))], {},
     Status.INVALID_ARGUMENT, "position id 10"),
    ("rotary-cache", "RotaryEmbedding", [("x", x4), ("c", cos_cache[:, :3]), ("s", sin_cache[:, :3]), ("p", positions)], {},
     Status.SHAPE_MISMATCH, "rotary_embedding_dim/2"),
    ("rms-scale", "RMSNormalization", [("x", normal(3, 4)), ("w", normal(3))], {}, Status.SHAPE_MISMATCH, "Scale"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises(case):
    _, op, inputs, attrs, status, words = case
    model = model_of(23, op, inputs, attrs, Y)
    with pytest.raises(KerfError) as failure:
        with kerf.load_bytes(model.SerializeToString()) as m:
            m.session(threads=1).run({n: a for n, a in inputs})
    assert failure.value.status == status, str(failure.value)
    assert words in failure.value.message
