"""The zoo (zoo.py): CNNs in torchvision's architectures and Hugging Face transformers models
from small configs, each exported by TorchScript (opset 17) and dynamo (opset 18, external
data). For every exported file: Kerf runs it and agrees with ONNX Runtime; Kerf's int8 file
(static QDQ for CNNs, dynamic for transformers) runs in Kerf and ONNX Runtime, Kerf close to
the file's meaning; 30% channel pruning gives a file ONNX Runtime and Kerf run alike, and
removes at least a quarter of the prunable parameters (issue 19's target) where Kerf meets it,
and no less than today elsewhere.

The exports are cached under $KERF_ZOO_DIR (default .build/kerf-work/zoo), keyed by torch and
transformers versions: the first run exports them (in parallel processes), later runs reuse
them."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402

import kerf  # noqa: E402
import zoo  # noqa: E402
from int8_reference import same_int8_products  # noqa: E402

CASES = [(name, exporter) for name in zoo.MODELS for exporter in zoo.EXPORTERS
         if (name, exporter) not in zoo.EXPECTED_EXPORT_FAILURES]
IDS = [f"{name}-{exporter}" for name, exporter in CASES]
PRUNE_TARGET = 0.25  # fraction of the prunable parameters 30% channel pruning must remove (issue 19)
PRUNE_TARGET_MET = {"resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext", "regnet_y_400mf", "shufflenet_v2",
                    "bert", "roberta", "distilbert", "whisper_encoder", "t5_encoder"}
# Below the target today (both exporters; measured at 30%): see the pruning test.
STATIC_BERT_FLOOR = 0.19
PRUNE_FLOOR = {"vit_tiny16": 0.17, "hf_vit": 0.18, "gpt2": 0.17, "gpt2_past": 0.12}


@pytest.fixture(scope="module")
def entries():
    """{id: zoo.Entry} of every (model, exporter), exported on first use."""
    return {entry.id: entry for entry in zoo.export_all()}


def exported(entries, case):
    entry = entries[case]
    assert entry.path is not None, f"{case} did not export: {entry.error}"
    return entry


def float_feeds(entry):
    """Batches to compare on, in one session: two of 2 images (CNNs) or token batches of the
    same shapes but other values (steps that compute from shapes alone reuse the first run's
    outputs in the second); for token models then another batch size and sequence length
    (the axes are dynamic), each with padding, and the first batch again."""
    first = zoo.inputs(entry.name, 2, seed=7)
    feeds = [first, zoo.inputs(entry.name, 2, seed=11)]
    if zoo.SPECS[entry.name].vocab:
        feeds += [zoo.inputs(entry.name, 3, seed=8, sequence=9, past=4), first]
    return feeds


def tolerance(expected):
    """Float agreement: 1e-4 of the output's magnitude (at least 1e-4 absolute)."""
    return 1e-4 * max(1.0, float(np.abs(expected).max()))


def assert_same_outputs(expected, actual, what):
    """Same output names and shapes (checked first), then values within `tolerance`."""
    assert list(actual) == list(expected), f"{what}: outputs {list(actual)} vs {list(expected)}"
    for name, want in expected.items():
        got = actual[name]
        assert got.shape == want.shape, f"{what}: {name} has shape {got.shape}, ONNX Runtime's {want.shape}"
        assert got.dtype == want.dtype, f"{what}: {name} is {got.dtype}, ONNX Runtime's {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=tolerance(want), err_msg=f"{what}: {name}")


def test_every_combination_exports_but_the_known_failures(entries):
    failed = {(entry.name, entry.exporter): entry.error for entry in entries.values() if entry.path is None}
    assert set(failed) == set(zoo.EXPECTED_EXPORT_FAILURES), failed
    for (name, exporter), error in failed.items():
        assert error, f"{name}-{exporter} failed without saying why"
    for name, exporter in CASES:
        entry = entries[f"{name}-{exporter}"]
        model = onnx.load(str(entry.path), load_external_data=False)
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        assert opset == (17 if exporter == "torchscript" else 18), (entry.id, opset)
        for value in model.graph.input:
            batch = value.type.tensor_type.shape.dim[0]
            assert batch.dim_param and not batch.dim_value, f"{entry.id}: input {value.name} has a fixed batch axis"


@pytest.mark.parametrize("case", IDS)
def test_kerf_runs_the_export_as_onnxruntime_does(entries, case):
    entry = exported(entries, case)
    with kerf.load(str(entry.path)) as model, model.session() as session:
        assert [i.name for i in model.inputs] == zoo.SPECS[entry.name].input_names
        for feeds in float_feeds(entry):
            assert_same_outputs(zoo.ort_run(entry.path, feeds), session.run(feeds), entry.id)


@pytest.mark.parametrize("case", IDS)
def test_int8(entries, case, tmp_path):
    """CNNs: Kerf's static QDQ file (U8S8, per channel, 6 calibration images) runs in ONNX
    Runtime (as written and optimized) and in Kerf, whose int8 kernels run it close to the
    file's meaning (ONNX Runtime with graph optimizations disabled). One requantization that
    rounds the other way at a boundary (a float kernel's last bit) early in these random-weight
    CNNs moves the logits by up to ~10% relative RMS by the end: ONNX Runtime's own int8
    kernels land as far from the meaning of the same file (relative to the file's quantization
    error against the float model, up to 0.70 on EfficientNet-B0 and RegNetY over 10 batches,
    Kerf's up to 0.70 too). So Kerf may be no further from the file's meaning than the file is
    from the float model (and 3% relative RMS at least; a wrong kernel lands much further), and
    the file no further than 25% from the float model.

    Transformers: Kerf's dynamic int8 file runs in ONNX Runtime (whose MatMulInteger saturates
    on CPUs without VNNI, so only there is its output a reference: within 2% of the output
    range) and in Kerf within 3% relative RMS of the float model. Both: Kerf's int8 kernels ran."""
    entry = exported(entries, case)
    quantized = tmp_path / "int8.onnx"
    feeds = zoo.inputs(entry.name, 2, seed=7)
    reference = zoo.ort_run(entry.path, feeds)
    if entry.kind == "cnn":
        kerf.quantize(str(entry.path), str(quantized), mode="static", calibration=zoo.calibration(entry.name))
        meaning = zoo.ort_run(quantized, feeds, optimized=False)
    else:
        kerf.quantize(str(entry.path), str(quantized), mode="dynamic")
        meaning = None
    ort_int8 = zoo.ort_run(quantized, feeds, optimized=True)
    with kerf.load(str(quantized)) as model, model.session() as session:
        got = session.run(feeds)
        plan = session.plan()
    assert list(got) == list(ort_int8) == list(reference)
    for name, want in reference.items():
        assert got[name].shape == ort_int8[name].shape == want.shape, name
    if entry.kind == "cnn":
        assert any(step.endswith("QuantizedConv") for step in plan), plan
        logits, exact = got["logits"], meaning["logits"]
        quantization_error = zoo.relative_rms(exact, reference["logits"])
        budget = zoo.static_int8_budget(exact, reference["logits"])
        assert zoo.relative_rms(logits, exact) <= budget, (zoo.relative_rms(logits, exact), budget)
        assert quantization_error <= 0.25, quantization_error
    else:
        assert any(step.endswith("DynamicQuantizedMatMul") for step in plan), plan
        for name, want in reference.items():
            assert zoo.relative_rms(got[name], want) <= 0.03, (name, zoo.relative_rms(got[name], want))
            if same_int8_products:
                span = float(np.abs(ort_int8[name]).max())
                assert np.abs(got[name] - ort_int8[name]).max() <= 0.02 * span, (name, np.abs(got[name] - ort_int8[name]).max(), span)


_pruned = {}


def pruned(entry, tmp_path_factory):
    """(pruned file, kerf.prune's report) of `entry` at 30% channel sparsity, made once."""
    if entry.id not in _pruned:
        path = tmp_path_factory.mktemp("pruned") / f"{entry.id}.onnx"
        try:
            report = kerf.prune(str(entry.path), str(path), method="channel", sparsity=zoo.PRUNE_SPARSITY,
                                channel_multiple=zoo.PRUNE_CHANNEL_MULTIPLE)
            _pruned[entry.id] = (path, report, None)
        except kerf.KerfError as error:
            _pruned[entry.id] = (None, None, error)
    path, report, error = _pruned[entry.id]
    if error is not None:
        raise error
    return path, report


@pytest.mark.parametrize("case", IDS)
def test_channel_pruned_file_runs_alike_in_onnxruntime_and_kerf(entries, case, tmp_path_factory):
    entry = exported(entries, case)
    path, report = pruned(entry, tmp_path_factory)
    onnx.checker.check_model(str(path))
    assert report.parameters_after <= report.parameters_before
    feeds = zoo.inputs(entry.name, 2, seed=7)
    expected = zoo.ort_run(path, feeds)
    unpruned = zoo.ort_run(entry.path, feeds)
    assert {k: v.shape for k, v in expected.items()} == {k: v.shape for k, v in unpruned.items()}
    assert_same_outputs(expected, zoo.kerf_run(path, feeds), f"{entry.id} pruned")


@pytest.mark.parametrize("case", IDS)
def test_channel_pruning_removes_its_share_of_the_prunable_parameters(entries, case, tmp_path_factory):
    """Prunable: the Conv, Gemm and MatMul weight initializers, counted with onnx before and after.
    Issue 19's target, a quarter removed by 30% channel pruning, holds on the CNNs in
    PRUNE_TARGET_MET (on the transformers, with attention heads removed whole; on ConvNeXt with
    its residual width, through its channels-last Transposes and LayerNorms); the others stay
    below it for the reasons their reports name (torch's MultiheadAttention, GPT-2's cache inputs
    and outputs and its LM head tied to the embedding, the ViTs' patch embeddings flattened by a
    Reshape before the residual width): for them the floor is what Kerf removes today, so that a
    regression fails, and the report must say what blocked the rest."""
    entry = exported(entries, case)
    path, report = pruned(entry, tmp_path_factory)
    before, after = zoo.prunable_parameters(entry.path), zoo.prunable_parameters(path)
    removed = 1 - after / before
    reasons = sorted({skip["reason"] for skip in report.skipped})
    floor = PRUNE_TARGET if entry.name in PRUNE_TARGET_MET else PRUNE_FLOOR[entry.name]
    assert removed >= floor, (f"{removed:.1%} of {before} prunable parameters removed, below {floor:.0%}", reasons)
    if entry.name not in PRUNE_TARGET_MET:
        blockers = ("Reshape", "Transpose", "not tracked", "Concat", "mixes them")
        assert any(word in reason for reason in reasons for word in blockers), reasons


# Attention in four export forms: BERT's separate projections, GPT-2's fused Q/K/V Conv1D
# between Reshapes, Whisper's fixed shapes with the query scaled before its split, T5's position
# bias with one row per head, shared by the layers.
DEAD_UNIT_MODELS = ("bert", "gpt2", "whisper_encoder", "t5_encoder")


def _silence_head_and_quarter(module):
    """Zeroes head 0 of every attention (its Q, K, V units and biases and the output
    projection's inputs) and the first quarter of every feed-forward layer's units and of
    Whisper's first convolution's channels (weights and biases before a GELU, GELU(0) = 0):
    removing exactly those changes nothing."""
    import torch
    d, quarter = zoo.HIDDEN // zoo.HEADS, zoo.FFN // 4
    with torch.no_grad():
        for name, m in module.named_modules():
            conv1d = type(m).__name__ == "Conv1D"  # GPT-2: weight [in, out]
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("query", "key", "value", "q_proj", "k_proj", "v_proj") or name.endswith(("SelfAttention.q", "SelfAttention.k", "SelfAttention.v")):
                m.weight[:d] = 0
                if m.bias is not None:
                    m.bias[:d] = 0
            elif leaf == "c_attn":
                for s in range(3):
                    m.weight[:, s * zoo.HIDDEN: s * zoo.HIDDEN + d] = 0
                    m.bias[s * zoo.HIDDEN: s * zoo.HIDDEN + d] = 0
            elif name.endswith(("attention.output.dense", "out_proj", "attn.c_proj", "SelfAttention.o")):
                if conv1d:
                    m.weight[:d] = 0
                else:
                    m.weight[:, :d] = 0
            elif leaf == "conv1":  # Whisper's first Conv1d, GELU after it
                m.weight[: zoo.HIDDEN // 4] = 0
                m.bias[: zoo.HIDDEN // 4] = 0
            elif name.endswith(("intermediate.dense", "fc1", "mlp.c_fc", "DenseReluDense.wi")):
                if conv1d:
                    m.weight[:, :quarter] = 0
                else:
                    m.weight[:quarter] = 0
                if m.bias is not None:
                    m.bias[:quarter] = 0


@pytest.mark.parametrize("exporter", zoo.EXPORTERS)
@pytest.mark.parametrize("name", DEAD_UNIT_MODELS)
def test_pruning_heads_and_channels_that_do_nothing_keeps_the_outputs(name, exporter, tmp_path):
    """With head 0 and a quarter of the feed-forward units silenced before export, pruning a
    quarter of the channels (one head of four per attention) removes exactly those: ONNX
    Runtime and Kerf give the unpruned file's outputs, and every attention lost a head."""
    src, dst = tmp_path / "silenced.onnx", tmp_path / "pruned.onnx"
    zoo.export_prepared(name, exporter, src, _silence_head_and_quarter)
    report = kerf.prune(str(src), str(dst), method="channel", sparsity=0.25)
    heads = [t for t in report.tensors if t.op_type in ("MatMul", "Gemm") and t.shape != t.shape_before]
    assert heads, report.skipped
    feeds = zoo.inputs(name, 2, seed=7)
    expected = zoo.ort_run(src, feeds)
    assert_same_outputs(expected, zoo.ort_run(dst, feeds), f"{name}-{exporter} pruned, in ONNX Runtime")
    assert_same_outputs(expected, zoo.kerf_run(dst, feeds), f"{name}-{exporter} pruned, in Kerf")
    width = {t.name: t.shape for t in report.tensors}
    model = onnx.load(str(dst), load_external_data=False)
    attention_outputs = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(attention_outputs) == zoo.LAYERS
    removed = 1 - zoo.prunable_parameters(dst) / zoo.prunable_parameters(src)
    assert removed >= 0.15, (removed, width, report.skipped)
    skipped = " ".join(s["reason"] for s in report.skipped)
    assert "Split" not in skipped and "reshapes them" not in skipped, skipped


def test_initializers_the_dynamo_exporter_shares_are_pruned_per_reader(tmp_path):
    """With Hugging Face's own initialization (zero biases, unit LayerNorm scales) the dynamo
    exporter stores identical tensors once and shares them among layers: channel pruning gives
    each reader a copy, prunes as with distinct tensors, and stores copies still equal once."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=256)
    module = transformers.BertModel(config).eval()
    ids, mask = torch.randint(0, 500, (2, 16)), torch.ones(2, 16, dtype=torch.long)
    src, dst = str(tmp_path / "bert.onnx"), str(tmp_path / "bert_pruned.onnx")
    torch.onnx.export(module, (ids, mask), src, dynamo=True, opset_version=18, input_names=["input_ids", "attention_mask"])
    report = kerf.prune(src, dst, method="channel", sparsity=0.3)
    assert not [s for s in report.skipped if "shared" in s["reason"]], report.skipped
    removed = 1 - zoo.prunable_parameters(dst) / zoo.prunable_parameters(src)
    # Exported with static shapes, the key's heads are folded into constant [B*H, S, d] reshapes
    # that channel pruning does not rewrite: its heads stay, its FFN channels go.
    assert removed >= STATIC_BERT_FLOOR, (removed, sorted({s["reason"] for s in report.skipped}))
    # A float copy left in the file differs from what it was copied from.
    tensors = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(dst).graph.initializer}
    for name, value in tensors.items():
        source = tensors.get(name.removesuffix("_copy").rsplit("_copy", 1)[0])
        if name.endswith("_copy") and value.dtype == np.float32 and source is not None:
            assert source.shape != value.shape or not np.array_equal(source, value), name
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    assert_same_outputs(zoo.ort_run(dst, feeds), zoo.kerf_run(dst, feeds), "default-init BERT pruned")
