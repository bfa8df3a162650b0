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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from channel_models import kerf_prune_dir, mlp, parameter_count, resnet  # noqa: E402


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
    return session(model).run(None, {model.graph.input[0].name: x})[0]


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
        }
        for name, m in models.items():
            onnx.checker.check_model(m, full_check=True)
            onnx.save(m, os.path.join(d, name + ".onnx"))
        reports = kerf_prune_dir(d, sparsity=0.5)
        for name, original in models.items():
            pruned = check_valid(os.path.join(d, name + ".pruned.onnx"))
            x = rng.standard_normal([4] + [v.dim_value for v in original.graph.input[0].type.tensor_type.shape.dim[1:]]).astype(np.float32)
            diff = compare(name, original, pruned, x, exact=name.endswith("zeroed"))
            before, after = parameter_count(original), parameter_count(pruned)
            r = reports[name]
            assert r["parameters_before"] == before and r["parameters_after"] == after, f"{name}: report counts differ"
            reduction = 1 - after / before
            # Half of every hidden width goes: the CNN's weights shrink ~4x, the MLP's hidden layers too.
            want = 0.70 if name.startswith("resnet") else 0.60
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
