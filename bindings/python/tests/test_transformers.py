"""A BERT-style encoder and a MobileNet-style CNN in PyTorch's export patterns agree with
ONNX Runtime for several batch sizes and sequence lengths, with and without optimization."""

import numpy as np
import onnx
import onnxruntime
import pytest

import kerf
import transformer_models as tm


@pytest.fixture(scope="module")
def bert():
    model = tm.bert_encoder()
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    return data, onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch,sequence", [(1, 128), (3, 16), (2, 37)])
@pytest.mark.parametrize("optimize", [True, False])
def test_bert_encoder_matches_onnxruntime(bert, batch, sequence, optimize):
    data, ort_session = bert
    feeds = tm.bert_feeds(batch, sequence)
    expected = ort_session.run(None, feeds)[0]
    with kerf.load_bytes(data) as model:
        got = model.session(threads=1, optimize=optimize).run(feeds)["last_hidden_state"]
    assert got.shape == (batch, sequence, 256)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("optimize", [True, False])
def test_mobilenet_like_matches_onnxruntime(batch, optimize):
    model = tm.mobilenet_like()
    data = model.SerializeToString()
    x = np.random.default_rng(batch).normal(0, 1, (batch, 3, 32, 32)).astype(np.float32)
    expected = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with kerf.load_bytes(data) as m:
        got = m.session(threads=1, optimize=optimize).run({"image": x})["logits"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
