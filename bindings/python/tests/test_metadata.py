"""Model.inputs / Model.outputs, dtype mapping, and library version queries."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf import ValueInfo


def load(proto, tmp_path, name="model.onnx"):
    return kerf.load(models.save(proto, tmp_path / name))


def test_mlp_signature(tmp_path):
    with load(models.mlp(), tmp_path) as model:
        assert model.inputs == [ValueInfo("input", np.dtype(np.float32), ("N", 16))]
        assert model.outputs == [ValueInfo("probs", np.dtype(np.float32), ("N", 10))]
        info = model.inputs[0]
        assert isinstance(info.name, str) and isinstance(info.dtype, np.dtype)
        assert isinstance(info.shape, tuple) and isinstance(info.shape[1], int)


def test_cnn_signature(tmp_path):
    with load(models.cnn(), tmp_path) as model:
        assert model.inputs == [ValueInfo("image", np.dtype(np.float32), ("N", 3, 8, 8))]
        assert model.outputs == [ValueInfo("logits", np.dtype(np.float32), ("N", 5))]


def test_signature_survives_close_and_is_shared_by_sessions(tmp_path):
    model = load(models.two_outputs(), tmp_path)
    session = model.session()
    model.close()
    assert [info.name for info in model.outputs] == ["relu", "neg", "sum"]
    assert session.inputs == model.inputs and session.outputs == model.outputs
    session.close()


def test_unknown_rank_symbolic_and_unknown_dims(tmp_path):
    # A symbolic dim comes back as its name; one with neither dim_value nor dim_param as None.
    unknown_dim = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, 4])
    proto = models.make_model(
        [helper.make_node("Identity", ["x"], ["y"], name="identity")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],  # rank unknown
        [unknown_dim],
    )
    with load(proto, tmp_path) as model:
        assert model.inputs == [ValueInfo("x", np.dtype(np.float32), None)]
        assert model.outputs == [ValueInfo("y", np.dtype(np.float32), ("batch", None, 4))]


def test_metadata_as_the_file_holds_it(tmp_path):
    proto = models.mlp()
    proto.producer_name, proto.producer_version, proto.domain = "trainer", "2.1", "org.example"
    proto.doc_string, proto.model_version = "a small MLP", 7
    proto.graph.name, proto.graph.doc_string = "mlp-graph", "two Gemms"
    helper.set_model_props(proto, {"author": "kerf tests", "licence": "MIT", "ünïcode": "välue"})
    with load(proto, tmp_path) as model:
        assert model.metadata == kerf.Metadata("trainer", "2.1", "org.example", "a small MLP", "mlp-graph",
                                               "two Gemms", 7, {"author": "kerf tests", "licence": "MIT",
                                                                "ünïcode": "välue"})
        assert list(model.metadata.properties) == ["author", "licence", "ünïcode"]  # file order


def test_empty_metadata(tmp_path):
    proto = models.identity(TensorProto.FLOAT, [2])
    proto.producer_name = ""
    with load(proto, tmp_path) as model:
        assert model.metadata.producer_name == "" and model.metadata.properties == {}
        assert model.metadata.model_version == 0 and model.metadata.doc_string == ""


def test_scalar_signature(tmp_path):
    with load(models.identity(TensorProto.INT64, []), tmp_path) as model:
        assert model.inputs == [ValueInfo("x", np.dtype(np.int64), ())]


def test_initializers_are_not_inputs(tmp_path):
    # IR >= 4 lets an initializer also be listed as a graph input (a default
    # the caller may override); kerf_model_input excludes it.
    proto = models.make_model(
        [helper.make_node("Add", ["x", "bias"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [models.initializer("bias", np.array([1.0, 2.0], np.float32))],
    )
    with load(proto, tmp_path) as model:
        assert [info.name for info in model.inputs] == ["x"]
        with model.session() as session:
            result = session.run({"x": np.array([10.0, 20.0], np.float32)})["y"]
    np.testing.assert_array_equal(result, [11.0, 22.0])


DTYPES = {
    TensorProto.FLOAT: np.float32, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8,
    TensorProto.UINT16: np.uint16, TensorProto.INT16: np.int16, TensorProto.INT32: np.int32,
    TensorProto.INT64: np.int64, TensorProto.BOOL: np.bool_, TensorProto.FLOAT16: np.float16,
    TensorProto.DOUBLE: np.float64, TensorProto.UINT32: np.uint32, TensorProto.UINT64: np.uint64,
}


@pytest.mark.parametrize("elem_type", sorted(DTYPES), ids=lambda code: TensorProto.DataType.Name(code))
def test_dtype_mapping(tmp_path, elem_type):
    with load(models.identity(elem_type, [3]), tmp_path) as model:
        assert model.inputs[0].dtype == np.dtype(DTYPES[elem_type])
        assert model.outputs[0].dtype == np.dtype(DTYPES[elem_type])


def test_bfloat16_maps_to_ml_dtypes(tmp_path):
    import ml_dtypes  # an onnx dependency, installed with the test requirements
    with load(models.identity(TensorProto.BFLOAT16, [3]), tmp_path) as model:
        assert model.inputs == [ValueInfo("x", np.dtype(ml_dtypes.bfloat16), (3,))]


def test_enums_mirror_the_header():
    assert [(s.name, s.value) for s in kerf.Status] == [
        ("OK", 0), ("INVALID_ARGUMENT", 1), ("IO", 2), ("INVALID_MODEL", 3), ("UNSUPPORTED", 4),
        ("SHAPE_MISMATCH", 5), ("OUT_OF_MEMORY", 6), ("CANCELLED", 7), ("INTERNAL", 8)]
    for dtype in kerf.DType:
        assert dtype.value == getattr(TensorProto, dtype.name), dtype


def test_versions():
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", kerf.__version__), kerf.__version__
    assert kerf.abi_version() >> 16 == 1


def test_model_repr_names_its_values(tmp_path):
    model = load(models.mlp(), tmp_path)
    assert "input" in repr(model) and "probs" in repr(model)
    model.close()
    assert "closed" in repr(model)
