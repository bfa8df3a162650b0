"""ONNX If, Loop and Scan against ONNX Runtime on small models built with onnx.helper: If with
outer-scope reads and branches of different shapes, Loop with a trip count only, a condition
only, both, scan outputs, carried values that grow, Loop inside If and Loop inside Loop, Scan
with reversed directions and other axes; each with graph optimizations on and off; concurrent
runs of one session. Malformed models and bad inputs must raise KerfError (never crash the
process); a loop that never ends on its own stops at the session's memory limit.

Tolerances: float32 rtol 1e-5 / atol 1e-6; integer and bool outputs exactly."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

import kerf
from kerf import KerfError, Status

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
rng = np.random.default_rng(11)
node = helper.make_node


def normal(*shape):
    return rng.normal(0, 1, shape).astype(np.float32)


def info(name, elem_type, shape=None):
    return helper.make_tensor_value_info(name, elem_type, shape)


def const(name, array):
    """A Constant node writing `array` as `name`."""
    return node("Constant", [], [name], value=helper.make_tensor(name + "_value", helper.np_dtype_to_tensor_dtype(array.dtype),
                                                                   array.shape, array.flatten().tolist()))


def model_of(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "main", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", opset)])


def run_kerf(model, feeds, optimize=True):
    with kerf.load_bytes(model.SerializeToString()) as m:
        return m.session(threads=1, optimize=optimize).run(feeds)


def check(model, feeds):
    """Kerf (optimized and not) returns what ONNX Runtime returns, dtype and shape included."""
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    want = dict(zip(names, session.run(None, feeds)))
    for optimize in (True, False):
        got = run_kerf(model, feeds, optimize)
        for name in names:
            w, g = want[name], got[name]
            assert g.dtype == w.dtype and g.shape == w.shape, f"{name}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
            if w.dtype == np.float32:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                np.testing.assert_array_equal(g, w, err_msg=name)


# MARK: If

def if_model():
    """y = If(c): then x + t (t = x * x from the main graph, [3, 4]), else Concat(x, x) ([6, 4]);
    z = If(c): then Identity(x), else ReduceSum(x) ([1, 4])."""
    then_branch = helper.make_graph([node("Add", ["x", "t"], ["sum"])], "then", [], [info("sum", F)])
    else_branch = helper.make_graph([node("Concat", ["x", "x"], ["cat"], axis=0)], "else", [], [info("cat", F)])
    then2 = helper.make_graph([node("Identity", ["x"], ["xi"])], "then2", [], [info("xi", F)])
    else2 = helper.make_graph([const("axes", np.array([0], np.int64)), node("ReduceSum", ["x", "axes"], ["rs"])],
                              "else2", [], [info("rs", F)])
    nodes = [node("Mul", ["x", "x"], ["t"]),
             node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch),
             node("If", ["c"], ["z"], then_branch=then2, else_branch=else2)]
    return model_of(nodes, [info("c", B, []), info("x", F, [3, 4])], [info("y", F), info("z", F)])


@pytest.mark.parametrize("cond", [True, False])
def test_if_reads_outer_values_and_branch_shapes_differ(cond):
    check(if_model(), {"c": np.array(cond), "x": normal(3, 4)})


def test_if_branch_returns_an_outer_value_directly():
    """ONNX allows it; ONNX Runtime refuses it (it asks for an Identity): checked against numpy."""
    then_branch = helper.make_graph([], "then", [], [info("x", F)])
    else_branch = helper.make_graph([node("Neg", ["x"], ["n"])], "else", [], [info("n", F)])
    model = model_of([node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
                     [info("c", B, []), info("x", F, [3])], [info("y", F)])
    x = normal(3)
    for optimize in (True, False):
        np.testing.assert_array_equal(run_kerf(model, {"c": np.array(True), "x": x}, optimize)["y"], x)
        np.testing.assert_array_equal(run_kerf(model, {"c": np.array(False), "x": x}, optimize)["y"], -x)


def test_if_on_a_constant_condition_reading_an_identity():
    """The condition is an initializer (constant folding must leave the If alone) and the branch
    reads the output of an Identity (which the optimizer must not forward away)."""
    then_branch = helper.make_graph([node("Relu", ["xi"], ["r"])], "then", [], [info("r", F)])
    else_branch = helper.make_graph([node("Neg", ["xi"], ["n"])], "else", [], [info("n", F)])
    nodes = [node("Identity", ["x"], ["xi"]), node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    for cond in (True, False):
        model = model_of(nodes, [info("x", F, [5])], [info("y", F)], [helper.make_tensor("c", B, [], [cond])])
        check(model, {"x": normal(5)})


def test_if_reads_a_value_the_optimizer_would_fuse_away():
    """h = MatMul(x, W) feeds Add(h, bias) (fused into one MatMul when h has no other reader) and
    Relu(h) (fused into the MatMul); the branch reads h too, so h must stay."""
    w = helper.make_tensor("W", F, [4, 3], normal(4, 3).flatten().tolist())
    bias = helper.make_tensor("bias", F, [3], normal(3).flatten().tolist())
    then_branch = helper.make_graph([node("Mul", ["h", "h"], ["sq"])], "then", [], [info("sq", F)])
    else_branch = helper.make_graph([node("Neg", ["h"], ["n"])], "else", [], [info("n", F)])
    nodes = [node("MatMul", ["x", "W"], ["h"]), node("Add", ["h", "bias"], ["y"]), node("Relu", ["y"], ["r"]),
             node("If", ["c"], ["z"], then_branch=then_branch, else_branch=else_branch)]
    model = model_of(nodes, [info("c", B, []), info("x", F, [2, 4])], [info("r", F), info("z", F)], [w, bias])
    for cond in (True, False):
        check(model, {"c": np.array(cond), "x": normal(2, 4)})


# MARK: Loop

def loop_body(scan=True, condition=None):
    """Body (i, cond, v) -> (cond', v + float(i) * s, [v * 2]): s is the main graph's value.
    `condition`: cond' = ReduceSum(v') < condition; otherwise cond' = cond."""
    nodes = [node("Cast", ["i"], ["fi"], to=F), node("Mul", ["fi", "s"], ["step"]), node("Add", ["v_in", "step"], ["v_out"]),
             const("two", np.array(2, np.float32)), node("Mul", ["v_in", "two"], ["doubled"])]
    if condition is None:
        nodes.append(node("Identity", ["cond_in"], ["cond_out"]))
    else:
        nodes += [node("ReduceSum", ["v_out"], ["total"], keepdims=0), const("limit", np.array(condition, np.float32)),
                  node("Less", ["total", "limit"], ["cond_out"])]
    outputs = [info("cond_out", B, []), info("v_out", F)] + ([info("doubled", F, [2])] if scan else [])
    return helper.make_graph(nodes, "body", [info("i", I64, []), info("cond_in", B, []), info("v_in", F)], outputs)


def loop_model(trip_count, cond, condition=None, scan=True):
    """A Loop over v (float [2]) with M and cond as given ("" omits them)."""
    inputs = [info("v0", F, [2]), info("s0", F, [2])]
    feeds_m = [node("Neg", ["s0"], ["s"])]
    if trip_count is not None:
        feeds_m.append(const("M", np.array(trip_count, np.int64)))
    if cond is not None:
        feeds_m.append(const("cond", np.array(cond)))
    loop = node("Loop", ["M" if trip_count is not None else "", "cond" if cond is not None else "", "v0"],
                ["v_final"] + (["scanned"] if scan else []), body=loop_body(scan, condition))
    outputs = [info("v_final", F)] + ([info("scanned", F)] if scan else [])
    return model_of(feeds_m + [loop], inputs, outputs)


LOOPS = [
    ("trip-count-only", 5, None, None),
    ("cond-only", None, True, -20.0),
    ("both-cond-stops", 10, True, -6.0),
    ("both-count-stops", 3, True, -1000.0),
    ("cond-false-at-start", 4, False, None),
    ("huge-trip-count", 2**63 - 1, True, -10.0),
]


@pytest.mark.parametrize("case", LOOPS, ids=[c[0] for c in LOOPS])
def test_loop_matches_onnxruntime(case):
    _, trip_count, cond, condition = case
    check(loop_model(trip_count, cond, condition), {"v0": normal(2), "s0": np.abs(normal(2)) + 0.5})


@pytest.mark.parametrize("trip_count", [0, -3])
def test_loop_without_iterations_returns_initial_values(trip_count):
    """The carried values come back as fed; the scan output is empty, [0] + its declared shape."""
    check(loop_model(trip_count, None), {"v0": normal(2), "s0": normal(2)})


def test_loop_carried_value_grows():
    """v = Concat(v, [i]) per iteration: a carried value whose shape changes."""
    body = helper.make_graph([node("Cast", ["i"], ["fi"], to=F), const("shape", np.array([1], np.int64)),
                              node("Reshape", ["fi", "shape"], ["fi1"]), node("Concat", ["v_in", "fi1"], ["v_out"], axis=0),
                              node("Identity", ["cond_in"], ["cond_out"])],
                             "body", [info("i", I64, []), info("cond_in", B, []), info("v_in", F)],
                             [info("cond_out", B, []), info("v_out", F)])
    model = model_of([node("Loop", ["M", "", "v0"], ["v"], body=body)], [info("M", I64, []), info("v0", F, [1])], [info("v", F)])
    check(model, {"M": np.array(4, np.int64), "v0": np.array([9], np.float32)})


def test_loop_inside_if_and_loop_inside_loop():
    """If(c) then Loop(3) whose body runs an inner Loop(2) reading the outer body's carried value
    and the main graph's x; else x * 3."""
    inner_body = helper.make_graph([node("Add", ["w_in", "v_in"], ["w_mid"]), node("Add", ["w_mid", "x"], ["w_out"]),
                                    node("Identity", ["c2"], ["c2_out"])],
                                   "inner", [info("j", I64, []), info("c2", B, []), info("w_in", F)],
                                   [info("c2_out", B, []), info("w_out", F), info("w_mid", F)])
    outer_body = helper.make_graph([const("two", np.array(2, np.int64)),
                                    node("Loop", ["two", "", "v_in"], ["w", "ws"], body=inner_body),
                                    const("half", np.array(0.5, np.float32)), node("Mul", ["w", "half"], ["v_out"]),
                                    node("Identity", ["c1"], ["c1_out"])],
                                   "outer", [info("i", I64, []), info("c1", B, []), info("v_in", F)],
                                   [info("c1_out", B, []), info("v_out", F), info("ws", F)])
    then_branch = helper.make_graph([const("three", np.array(3, np.int64)),
                                     node("Loop", ["three", "", "x"], ["r", "rs"], body=outer_body)],
                                    "then", [], [info("r", F), info("rs", F)])
    else_branch = helper.make_graph([const("k", np.array(3, np.float32)), node("Mul", ["x", "k"], ["e"]),
                                     const("axes", np.array([0, 1], np.int64)), node("Unsqueeze", ["e", "axes"], ["e2"])],
                                    "else", [], [info("e", F), info("e2", F)])
    model = model_of([node("If", ["c"], ["y", "ys"], then_branch=then_branch, else_branch=else_branch)],
                     [info("c", B, []), info("x", F, [2, 3])], [info("y", F), info("ys", F)])
    for cond in (True, False):
        check(model, {"c": np.array(cond), "x": normal(2, 3)})


def endless_loop_model():
    """Loop with M = 2^63 - 1 and a condition that stays true, scanning a [256, 256] float each
    iteration: only the memory limit stops it."""
    body = helper.make_graph([node("Identity", ["cond_in"], ["cond_out"]), node("Identity", ["v_in"], ["v_out"]),
                              node("Add", ["v_in", "v_in"], ["twice"])],
                             "body", [info("i", I64, []), info("cond_in", B, []), info("v_in", F)],
                             [info("cond_out", B, []), info("v_out", F), info("twice", F)])
    nodes = [const("M", np.array(2**63 - 1, np.int64)), const("cond", np.array(True)),
             node("Loop", ["M", "cond", "v0"], ["v", "vs"], body=body)]
    return model_of(nodes, [info("v0", F, [256, 256])], [info("v", F), info("vs", F)])


def test_endless_loop_stops_at_the_memory_limit():
    with kerf.load_bytes(endless_loop_model().SerializeToString()) as m:
        session = m.session(threads=1, memory_limit=64 << 20)
        with pytest.raises(KerfError) as failure:
            session.run({"v0": normal(256, 256)})
    assert failure.value.status == Status.OUT_OF_MEMORY, str(failure.value)


def test_concurrent_runs_of_one_session_agree():
    model = loop_model(6, True, -50.0)
    feeds = [{"v0": normal(2), "s0": np.abs(normal(2)) + 0.5} for _ in range(8)]
    with kerf.load_bytes(model.SerializeToString()) as m:
        session = m.session(threads=1)
        alone = [session.run(f) for f in feeds]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(session.run, feeds * 4))
    for i, got in enumerate(together):
        for name, value in alone[i % len(feeds)].items():
            np.testing.assert_array_equal(got[name], value)


# MARK: Scan

def scan_model(input_axes, input_directions, output_axes, output_directions):
    """Scan over x [3, 4, 2] and y [4, 3] (axes as given) with a state s [2]: per slice
    s' = s + x_t * sum(y_t) (x_t [.., 2] reduced to [2]); scan outputs s' and x_t * 2."""
    body = helper.make_graph([node("ReduceSum", ["yt"], ["ysum"], keepdims=0),
                              const("axes0", np.array([0], np.int64)), node("ReduceSum", ["xt", "axes0"], ["xsum"], keepdims=0),
                              node("Mul", ["xsum", "ysum"], ["inc"]), node("Add", ["s_in", "inc"], ["s_out"]),
                              node("Add", ["xt", "xt"], ["x2"]), node("Identity", ["s_out"], ["s_scan"])],
                             "body", [info("s_in", F, [2]), info("xt", F), info("yt", F)],
                             [info("s_out", F, [2]), info("s_scan", F), info("x2", F)])
    attrs = dict(num_scan_inputs=2, scan_input_axes=input_axes, scan_input_directions=input_directions,
                 scan_output_axes=output_axes, scan_output_directions=output_directions)
    x_shape = [4, 3, 2] if input_axes[0] == 0 else [3, 4, 2]
    y_shape = [4, 3] if input_axes[1] == 0 else [3, 4]
    return model_of([node("Scan", ["s0", "x", "y"], ["s", "ss", "xs"], body=body, **attrs)],
                    [info("s0", F, [2]), info("x", F, x_shape), info("y", F, y_shape)],
                    [info("s", F), info("ss", F), info("xs", F)]), x_shape, y_shape


SCANS = [
    ("forward", [0, 0], [0, 0], [0, 0], [0, 0]),
    ("reverse-inputs", [0, 0], [1, 0], [0, 0], [0, 0]),
    ("other-axes", [1, -1], [0, 1], [1, -1], [0, 0]),
    ("reverse-outputs", [1, 1], [1, 1], [0, 2], [1, 1]),
]


@pytest.mark.parametrize("case", SCANS, ids=[c[0] for c in SCANS])
def test_scan_matches_onnxruntime(case):
    model, x_shape, y_shape = scan_model(*case[1:])
    check(model, {"s0": normal(2), "x": normal(*x_shape), "y": normal(*y_shape)})


def scan8_model(directions=(0, 0)):
    """Opset 8's Scan over a batch of 3: state [3, 2], scan inputs x, y [3, 4, 2]."""
    body = helper.make_graph([node("Add", ["s_in", "xt"], ["s_mid"]), node("Mul", ["s_mid", "yt"], ["s_out"]),
                              node("Identity", ["s_out"], ["s_scan"])], "body",
                             [info("s_in", F, [2]), info("xt", F, [2]), info("yt", F, [2])],
                             [info("s_out", F, [2]), info("s_scan", F, [2])])
    return model_of([node("Scan", ["lens", "s0", "x", "y"], ["s", "ss"], body=body, num_scan_inputs=2, directions=list(directions))],
                    [info("lens", I64, [3]), info("s0", F, [3, 2]), info("x", F, [3, 4, 2]), info("y", F, [3, 4, 2])],
                    [info("s", F), info("ss", F)], opset=8)


@pytest.mark.parametrize("directions", [[0, 0], [1, 0]])
def test_scan8_batched_with_sequence_lengths(directions):
    """Opset 8: a batch axis first; row b scans sequence_lens[b] steps, its scan output padded with zeros."""
    check(scan8_model(directions), {"lens": np.array([4, 2, 1], np.int64), "s0": normal(3, 2), "x": normal(3, 4, 2), "y": normal(3, 4, 2)})


# MARK: Bad models and inputs


def bad_if(then_outputs=1, cond_type=B):
    then_branch = helper.make_graph([node("Relu", ["x"], ["a"]), node("Neg", ["x"], ["b"])], "then", [],
                                    [info("a", F), info("b", F)][:then_outputs])
    else_branch = helper.make_graph([node("Neg", ["x"], ["n"])], "else", [], [info("n", F)])
    return model_of([node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
                    [info("c", cond_type, None), info("x", F, [2])], [info("y", F)])


def bad_loop(extra_body_input=False, cond_output=B):
    body = helper.make_graph([node("Identity", ["v_in"], ["v_out"]), node("Cast", ["cond_in"], ["cond_out"], to=cond_output)],
                             "body", [info("i", I64, []), info("cond_in", B, []), info("v_in", F)] + [info("extra", F)] * extra_body_input,
                             [info("cond_out", cond_output, []), info("v_out", F)])
    return model_of([node("Loop", ["M", "", "v0"], ["v"], body=body)], [info("M", I64, []), info("v0", F, [2])],
                    [info("v", F)])


def loop_with_m(m_type):
    body = helper.make_graph([node("Identity", ["v_in"], ["v_out"]), node("Identity", ["cond_in"], ["cond_out"])],
                             "body", [info("i", I64, []), info("cond_in", B, []), info("v_in", F)],
                             [info("cond_out", B, []), info("v_out", F)])
    return model_of([node("Loop", ["M", "", "v0"], ["v"], body=body)], [info("M", m_type, None), info("v0", F, [2])], [info("v", F)])


def scan_of(attrs, body_inputs=("s_in", "xt")):
    body = helper.make_graph([node("Add", ["s_in", "xt"], ["s_out"]), node("Identity", ["s_out"], ["y"])], "body",
                             [info(n, F) for n in body_inputs], [info("s_out", F), info("y", F)])
    return model_of([node("Scan", ["s0", "x"], ["s", "ys"], body=body, **attrs)], [info("s0", F, [2]), info("x", F, None)],
                    [info("s", F), info("ys", F)])


def growing_scan():
    """A Scan whose per-iteration output grows: it cannot be stacked."""
    body = helper.make_graph([node("Concat", ["s_in", "xt"], ["s_out"], axis=0), node("Identity", ["s_out"], ["y"])], "body",
                             [info("s_in", F), info("xt", F)], [info("s_out", F), info("y", F)])
    return model_of([node("Scan", ["s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1)],
                    [info("s0", F, [1]), info("x", F, [3, 1])], [info("s", F), info("ys", F)])


def sequence_body_loop():
    """A body whose loop-carried value is declared a sequence."""
    body = helper.make_graph([node("Identity", ["v_in"], ["v_out"]), node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [info("i", I64, []), info("cond_in", B, []),
                              helper.make_tensor_sequence_value_info("v_in", F, None)],
                             [info("cond_out", B, []), helper.make_tensor_sequence_value_info("v_out", F, None)])
    return model_of([node("Loop", ["M", "", "v0"], ["v"], body=body)], [info("M", I64, []), info("v0", F, [2])], [info("v", F)])


def undefined_outer_name():
    then_branch = helper.make_graph([node("Relu", ["nowhere"], ["a"])], "then", [], [info("a", F)])
    else_branch = helper.make_graph([node("Neg", ["x"], ["n"])], "else", [], [info("n", F)])
    return model_of([node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
                    [info("c", B, []), info("x", F, [2])], [info("y", F)])


x2 = normal(2)
BAD = [
    ("if-float-cond", bad_if(cond_type=F), {"c": np.array(1, np.float32), "x": x2}, Status.INVALID_ARGUMENT, "bool"),
    ("if-two-element-cond", bad_if(), {"c": np.array([True, False]), "x": x2}, Status.INVALID_ARGUMENT, "one element"),
    ("if-branch-output-counts", bad_if(then_outputs=2), {"c": np.array(True), "x": x2}, Status.INVALID_MODEL, "outputs"),
    ("if-undefined-outer-name", undefined_outer_name(), {"c": np.array(True), "x": x2}, Status.INVALID_MODEL, "nowhere"),
    ("loop-body-arity", bad_loop(extra_body_input=True), {"M": np.array(2, np.int64), "v0": x2}, Status.INVALID_MODEL, "declares 4 inputs"),
    ("loop-float-trip-count", loop_with_m(F), {"M": np.array(2, np.float32), "v0": x2}, Status.INVALID_ARGUMENT, "trip count"),
    ("loop-two-trip-counts", loop_with_m(I64), {"M": np.array([2, 3], np.int64), "v0": x2}, Status.INVALID_ARGUMENT, "trip count"),
    ("loop-float-condition", bad_loop(cond_output=F), {"M": np.array(2, np.int64), "v0": x2}, Status.INVALID_ARGUMENT, "condition"),
    ("loop-sequence-carried", sequence_body_loop(), {"M": np.array(2, np.int64), "v0": x2}, Status.UNSUPPORTED, "sequence"),
    ("scan-no-scan-inputs", scan_of(dict(num_scan_inputs=0)), {"s0": x2, "x": normal(3, 2)}, Status.INVALID_MODEL, "num_scan_inputs"),
    ("scan-too-many-scan-inputs", scan_of(dict(num_scan_inputs=3)), {"s0": x2, "x": normal(3, 2)}, Status.INVALID_MODEL,
     "num_scan_inputs"),
    ("scan-body-arity", scan_of(dict(num_scan_inputs=1), body_inputs=("s_in", "xt", "extra")), {"s0": x2, "x": normal(3, 2)},
     Status.INVALID_MODEL, "declares 3 inputs"),
    ("scan-axis-out-of-range", scan_of(dict(num_scan_inputs=1, scan_input_axes=[2])), {"s0": x2, "x": normal(3, 2)},
     Status.INVALID_ARGUMENT, "scan_input_axes"),
    ("scan-direction", scan_of(dict(num_scan_inputs=1, scan_input_directions=[2])), {"s0": x2, "x": normal(3, 2)},
     Status.INVALID_MODEL, "directions"),
    ("scan-axes-count", scan_of(dict(num_scan_inputs=1, scan_input_axes=[0, 0])), {"s0": x2, "x": normal(3, 2)},
     Status.INVALID_MODEL, "scan_input_axes"),
    ("scan8-zero-length", scan8_model(), {"lens": np.array([4, 0, 1], np.int64), "s0": normal(3, 2), "x": normal(3, 4, 2),
                                          "y": normal(3, 4, 2)}, Status.INVALID_ARGUMENT, "sequence_lens"),
    ("scan-growing-output", growing_scan(), {"s0": normal(1), "x": normal(3, 1)}, Status.SHAPE_MISMATCH, "cannot be stacked"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_model_or_input_raises(case):
    _, model, feeds, status, words = case
    with pytest.raises(KerfError) as failure:
        run_kerf(model, feeds)
    assert failure.value.status == status, str(failure.value)
    assert words in failure.value.message, failure.value.message
