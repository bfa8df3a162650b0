"""Validity and quality of Kerf's channel pruning, checked outside Kerf.

  python3 Tests/Compress/check_channel_prune.py

1. Builds a ResNet-style CNN and a 3-layer MLP with onnx.helper, in two variants: random
   weights, and with half the channels of every prunable group made exactly zero.
2. Prunes them with Kerf at sparsity 0.5 (through the Swift test ChannelPruningFilesTests).
3. Checks every pruned model with onnx.checker (full_check) and strict shape inference, runs it
   in ONNX Runtime, and requires:
   - zeroed variants: outputs equal to the original's (the removed channels were zero);
   - every variant: the expected parameter reduction and the output shape unchanged.
4. Also checks the models the Swift tests wrote, when run with KERF_PRUNE_OUT=<dir> (pass it as
   the first argument): each <name>.pruned.onnx against <name>.onnx.
Exits non-zero on the first failure.
"""

import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bindings", "python", "tests"))
from channel_models import kerf_prune_dir, mlp, parameter_count, resnet  # noqa: E402
from transformer_models import bert_encoder, bert_feeds, mobilenet_like  # noqa: E402


def bert_zeroed(hidden=256, ffn=1024, heads=4):
    """The BERT-style encoder with half the FFN units (GELU(0) = 0) and half the attention heads
    of every layer exactly zero (Q, K, V columns and biases, output-projection rows)."""
    m = bert_encoder(hidden=hidden, ffn=ffn, heads=heads)
    rng = np.random.default_rng(3)
    inits = {t.name: t for t in m.graph.initializer}
    order = [t.name for t in m.graph.initializer]
    square = [n for n in order if tuple(inits[n].dims) == (hidden, hidden)]
    size = hidden // heads

    def zero(name, axis, units):
        a = numpy_helper.to_array(inits[name]).copy()
        index = [slice(None)] * a.ndim
        index[axis] = units
        a[tuple(index)] = 0
        inits[name].CopyFrom(numpy_helper.from_array(a, name))

    # Per layer the builder creates Q, K, V, output projections in this order, each bias right
    # after its weight.
    for layer in range(len(square) // 4):
        q, k, v, o = square[4 * layer: 4 * layer + 4]
        units = np.concatenate([np.arange(h * size, (h + 1) * size) for h in rng.permutation(heads)[: heads // 2]])
        for w in (q, k, v):
            zero(w, 1, units)
            zero(order[order.index(w) + 1], 0, units)
        zero(o, 0, units)
    by_reader = {n.input[1]: n for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    for name, t in inits.items():
        if tuple(t.dims) == (hidden, ffn) and name in by_reader:
            gone = rng.permutation(ffn)[: ffn // 2]
            w = numpy_helper.to_array(t).copy()
            w[:, gone] = 0
            t.CopyFrom(numpy_helper.from_array(w, name))
            add = next(n for n in m.graph.node if n.op_type == "Add" and by_reader[name].output[0] in n.input)
            bias_name = next(i for i in add.input if i in inits)
            b = numpy_helper.to_array(inits[bias_name]).copy()
            b[gone] = 0
            inits[bias_name].CopyFrom(numpy_helper.from_array(b, bias_name))
    return m


def session(model):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])


def check_valid(path):
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def outputs(model, x):
    feeds = x if isinstance(x, dict) else {model.graph.input[0].name: x}
    return session(model).run(None, feeds)[0]


def compare(name, original, pruned, x, exact):
    a, b = outputs(original, x), outputs(pruned, x)
    assert a.shape == b.shape, f"{name}: output shape {b.shape} != {a.shape}"
    diff = float(np.abs(a - b).max())
    scale = max(1.0, float(np.abs(a).max()))
    if exact:
        assert diff <= 1e-4 * scale, f"{name}: outputs changed by {diff} although only zero channels were removed"
    return diff


def main():
    failures = 0
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        models = {
            "resnet_random": resnet(seed=0)[0],
            "resnet_zeroed": resnet(seed=0, zero_half=True)[0],
            "mlp_random": mlp(seed=1),
            "mlp_zeroed": mlp(seed=1, zero_half=True),
            "mobilenet_random": mobilenet_like(),
            # With inferred value_info (heads included), so stale declarations would show.
            "bert_random": onnx.shape_inference.infer_shapes(bert_encoder(), data_prop=True),
            "bert_zeroed": onnx.shape_inference.infer_shapes(bert_zeroed(), data_prop=True),
        }
        # Fraction of parameters that must go: half of every hidden width in the CNNs and the
        # MLP; in the encoder the FFN units and attention heads (the residual width stays).
        wanted = {"resnet": 0.70, "mlp": 0.60, "mobilenet": 0.50, "bert": 0.35}
        for name, m in models.items():
            onnx.checker.check_model(m, full_check=True)
            onnx.save(m, os.path.join(d, name + ".onnx"))
        reports = kerf_prune_dir(d, sparsity=0.5)
        for name, original in models.items():
            pruned = check_valid(os.path.join(d, name + ".pruned.onnx"))
            if name.startswith("bert"):
                x = bert_feeds(2, 16)
            else:
                x = rng.standard_normal([4] + [v.dim_value for v in original.graph.input[0].type.tensor_type.shape.dim[1:]]).astype(np.float32)
            diff = compare(name, original, pruned, x, exact=name.endswith("zeroed"))
            before, after = parameter_count(original), parameter_count(pruned)
            r = reports[name]
            assert r["parameters_before"] == before and r["parameters_after"] == after, f"{name}: report counts differ"
            reduction = 1 - after / before
            want = wanted[name.split("_")[0]]
            ok = reduction >= want
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: params {before} -> {after} ({reduction:.1%} fewer), "
                  f"{len(r['tensors'])} tensors rewritten, {len(r['skipped'])} groups skipped, max |diff| {diff:.2e}")
            for s in r["skipped"]:
                print(f"       skipped {s['name']}: {s['reason']}")

    if len(sys.argv) > 1:
        out = sys.argv[1]
        for f in sorted(os.listdir(out)):
            if not f.endswith(".pruned.onnx"):
                continue
            name = f[: -len(".pruned.onnx")]
            original = onnx.load(os.path.join(out, name + ".onnx"))
            pruned = check_valid(os.path.join(out, f))
            dims = [v.dim_value or 1 for v in original.graph.input[0].type.tensor_type.shape.dim]
            x = rng.standard_normal(dims).astype(np.float32)
            diff = compare(name, original, pruned, x, exact=True)
            print(f"ok   swift test model {name}: checker and ORT clean, max |diff| {diff:.2e}")
    print("FAILED" if failures else "all channel-pruning checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
