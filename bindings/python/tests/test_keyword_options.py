"""The options of Kerf's compression and training functions are keyword-only."""

import inspect

import pytest

import kerf

POSITIONAL = {
    kerf.quantize: ["src", "dst"],
    kerf.prune: ["src", "dst"],
    kerf.sensitivity: ["model", "data"],
    kerf.train: ["src", "dst"],
    kerf.Trainer.__init__: ["self", "model", "loss"],
}


@pytest.mark.parametrize("function", list(POSITIONAL), ids=lambda f: f.__qualname__)
def test_only_the_model_and_destination_are_positional(function):
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p.name for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD]
    keyword_only = [p.name for p in parameters if p.kind == p.KEYWORD_ONLY]
    assert positional == POSITIONAL[function]
    assert len(keyword_only) >= 3 and len(positional) + len(keyword_only) == len(parameters)


def test_a_positional_option_is_a_type_error(tmp_path):
    with pytest.raises(TypeError):
        kerf.prune("model.onnx", tmp_path / "out.onnx", 0.7)
    with pytest.raises(TypeError):
        kerf.quantize("model.onnx", tmp_path / "out.onnx", "static")
