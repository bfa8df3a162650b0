"""`kerf inspect --shapes` against ONNX's own shape inference
(`onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)`).

For every value ONNX infers a complete static shape for, Kerf must print the same dtype and
shape. The models: the nine light_* architectures and the PyTorch-exported test models shipped
in the onnx wheel, and the helper-built MLP, CNN, MobileNet-style CNN and BERT-style encoder
(the encoder also with its batch and sequence dims fixed, so that its shape computations
resolve to numbers). `python3 Tests/CLI/test_shapes.py` prints the comparison per model."""

import glob
import os
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
import models  # noqa: E402
import transformer_models  # noqa: E402

KERF = os.environ.get("KERF_CLI", os.path.join(ROOT, ".build", "release", "kerf"))
DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")

KERF_DTYPES = {
    TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", TensorProto.INT8: "int8", TensorProto.UINT16: "uint16",
    TensorProto.INT16: "int16", TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.STRING: "string",
    TensorProto.BOOL: "bool", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
    TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64", TensorProto.BFLOAT16: "bfloat16",
    14: "complex64", 15: "complex128", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
    20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1", 24: "float8e8m0", 25: "uint2", 26: "int2",
}


def kerf_shapes(path):
    """{name: (dtype or None, [dims] or None)} as `kerf inspect --shapes` prints them (dims are
    ints, symbol strings or None), and the diagnostic lines."""
    result = subprocess.run([KERF, "inspect", "--shapes", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("values ("))
    end = next(i for i, line in enumerate(lines) if line.startswith("diagnostics ("))
    assert int(lines[start].split("(")[1].split(")")[0]) == end - start - 1
    values = {}
    for line in lines[start + 1:end]:
        name, rest = line[2:].rsplit(": ", 1)
        dtype, shape = rest.split(" ", 1)
        dims = None
        if shape != "?":
            inner = shape[1:-1]
            dims = [] if not inner else [int(d) if d.lstrip("-").isdigit() else (None if d == "?" else d)
                                         for d in inner.split(", ")]
        values[name] = (None if dtype == "?" else dtype, dims)
    return values, [line[2:] for line in lines[end + 1:]]


def onnx_shapes(model):
    """{name: (dtype, [dims])} for every value ONNX types: dims are ints, symbol strings, or None."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    g = inferred.graph
    out = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        t = v.type.tensor_type
        if not v.type.HasField("tensor_type") or not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
        out[v.name] = (KERF_DTYPES.get(t.elem_type), dims)
    for i in g.initializer:
        out.setdefault(i.name, (KERF_DTYPES.get(i.data_type), list(i.dims)))
    return out


def compare(path):
    """(compared, mismatches, kerf_more, kerf_less): the values ONNX gives a full static shape,
    those where Kerf differs, and the values where one side has a static shape the other lacks."""
    model = onnx.load(str(path))
    want = onnx_shapes(model)
    got, _ = kerf_shapes(path)
    static = lambda dims: dims is not None and all(isinstance(d, int) for d in dims)  # noqa: E731
    compared, mismatches, more, less = 0, [], [], []
    for name, (dtype, dims) in want.items():
        if not static(dims):
            continue
        compared += 1
        mine = got.get(name, (None, None))
        if mine != (dtype, dims):
            mismatches.append(f"{name}: onnx {dtype} {dims}, kerf {mine[0]} {mine[1]}")
            if not static(mine[1]):
                less.append(name)
    for name, (dtype, dims) in got.items():
        if static(dims) and not static(want.get(name, (None, None))[1]):
            more.append(name)
    return compared, mismatches, more, less


def _wheel_models():
    paths = sorted(glob.glob(os.path.join(DATA, "light", "*.onnx")))
    for kind in ["pytorch-operator", "pytorch-converted", "simple"]:
        paths += sorted(glob.glob(os.path.join(DATA, kind, "*", "model.onnx")))
    return paths


def _fixed_dims(model, dims):
    """The model with its symbolic input dims replaced by numbers (dims: {symbol: size})."""
    for v in model.graph.input:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in dims:
                d.dim_value = dims[d.dim_param]
    return model


def _built_models(directory):
    built = {
        "mlp": models.mlp(),
        "cnn": models.cnn(channels=8, size=8, classes=5),
        "mobilenet_like": transformer_models.mobilenet_like(),
        "bert_encoder": transformer_models.bert_encoder(layers=2, hidden=64, heads=4, ffn=128, vocab=50, max_positions=32),
        "bert_encoder_fixed": _fixed_dims(transformer_models.bert_encoder(layers=2, hidden=64, heads=4, ffn=128, vocab=50,
                                                                          max_positions=32), {"batch": 2, "sequence": 7}),
        "mobilenet_like_fixed": _fixed_dims(transformer_models.mobilenet_like(), {"N": 3}),
    }
    paths = []
    for name, model in built.items():
        path = os.path.join(directory, f"{name}.onnx")
        onnx.save(model, path)
        paths.append(path)
    return paths


def _run(paths):
    rows = [(os.path.relpath(p, DATA) if p.startswith(DATA) else os.path.basename(p), *compare(p)) for p in paths]
    return rows


def test_wheel_models_match_onnx_shape_inference():
    rows = _run(_wheel_models())
    assert len(rows) >= 100
    compared = sum(r[1] for r in rows)
    mismatches = [f"{r[0]}: {m}" for r in rows for m in r[2]]
    assert not mismatches, "\n".join(mismatches[:40])
    assert compared >= 3000, compared


def test_built_models_match_onnx_shape_inference(tmp_path):
    rows = {r[0]: r for r in _run(_built_models(tmp_path))}
    mismatches = [f"{name}: {m}" for name, r in rows.items() for m in r[2]]
    assert not mismatches, "\n".join(mismatches[:40])
    # With numbers for batch and sequence every value of the encoder has a static shape.
    fixed = rows["bert_encoder_fixed.onnx"]
    assert fixed[1] >= 150 and not fixed[4], fixed[4]
    assert rows["mobilenet_like_fixed.onnx"][1] >= 40


def test_symbolic_batch_survives_the_shape_computations(tmp_path):
    path = tmp_path / "bert.onnx"
    onnx.save(transformer_models.bert_encoder(layers=1, hidden=64, heads=4, ffn=128, vocab=50, max_positions=32), path)
    got, diagnostics = kerf_shapes(path)
    assert not diagnostics, diagnostics
    reshaped = [name for name, n in ((m.output[0], m) for m in onnx.load(path).graph.node) if n.op_type == "Reshape"]
    assert len(reshaped) == 4
    # The position embeddings are sliced to min(sequence, 32) rows, which has no name, so the
    # sum with them (and all after) knows the batch but not the sequence length.
    assert got[reshaped[0]] == ("float32", ["batch", None, 4, 16])
    assert got[reshaped[-1]] == ("float32", ["batch", None, 64])
    assert got["last_hidden_state"] == ("float32", ["batch", "sequence", 64])


NODE_CORPUS = os.environ.get("KERF_NODE_CORPUS", os.path.join(ROOT, ".build", "onnx-node-tests"))


def _reference_output_shapes(case_dir, model):
    """{graph output name: (dtype, dims)} of the case's first stored output set (tensors only)."""
    out = {}
    for i, o in enumerate(model.graph.output):
        path = os.path.join(case_dir, "test_data_set_0", f"output_{i}.pb")
        if not os.path.exists(path):
            continue
        t = TensorProto()
        try:
            t.ParseFromString(open(path, "rb").read())
        except Exception:  # a sequence or optional output
            continue
        if t.data_type:
            out[o.name] = (KERF_DTYPES.get(t.data_type), list(t.dims))
    return out


def test_node_test_corpus_matches_onnx_and_the_reference_outputs():
    """Run by `make test-conformance`, which writes the corpus first (`make test-cli` leaves it
    out). Every ONNX backend node test (197 ops, every opset form, function-expanded variants):
    static shapes agree with onnx's inference, and every graph output Kerf gives a static shape
    has the shape and dtype of the reference output. Kerf may know less only where a value comes
    out of a subgraph (If, Loop, Scan) or a sequence."""
    assert os.path.isdir(NODE_CORPUS), f"no node-test corpus at {NODE_CORPUS}: `make test-conformance` writes it"
    paths = sorted(glob.glob(os.path.join(NODE_CORPUS, "*", "model.onnx")))
    assert len(paths) >= 1500
    compared, outputs, wrong, less = 0, 0, [], []
    for path in paths:
        model = onnx.load(path)
        try:
            c, mismatches, _, _ = compare(path)
        except onnx.shape_inference.InferenceError:
            continue
        compared += c
        # Values computed from what a subgraph (If, Loop, Scan) or a sequence op produces.
        downstream = set()
        for n in model.graph.node:
            if n.op_type in ("If", "Loop", "Scan") or n.op_type.startswith("Sequence") or downstream.intersection(n.input):
                downstream.update(n.output)
        for m in mismatches:
            name = m.split(": onnx ")[0]
            if m.endswith(" None") and name in downstream:
                less.append(name)
            else:
                wrong.append(m)
        got, _ = kerf_shapes(path)
        for name, (dtype, dims) in _reference_output_shapes(os.path.dirname(path), model).items():
            mine = got.get(name, (None, None))
            if mine[1] is not None and all(isinstance(d, int) for d in mine[1]):
                outputs += 1
                if mine != (dtype, dims):
                    wrong.append(f"{path}: output {name}: reference {dtype} {dims}, kerf {mine}")
    assert not wrong, "\n".join(wrong[:40])
    assert len(less) <= 40, less
    assert compared >= 15000 and outputs >= 2000, (compared, outputs)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        rows = _run(_wheel_models() + _built_models(directory))
    total = [0, 0, 0, 0]
    for name, compared, mismatches, more, less in rows:
        print(f"{name:70s} compared {compared:5d}  mismatches {len(mismatches):3d}  kerf-more {len(more):3d}  kerf-less {len(less):3d}")
        for m in mismatches:
            print("    " + m)
        for i, v in enumerate([compared, len(mismatches), len(more), len(less)]):
            total[i] += v
    print(f"{len(rows)} models: compared {total[0]}, mismatches {total[1]}, kerf-more {total[2]}, kerf-less {total[3]}")
