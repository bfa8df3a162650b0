"""The ctypes declarations of kerf/_bindings.py and the binding's constants against what a C
compiler makes of include/kerf.h: Tests/CAPI/abi_layout.c prints the size and every field's
offset and size of each public struct, and the value of each constant.

The program is $KERF_ABI_LAYOUT when the Makefile built it, else compiled here with cc."""

import ctypes
import importlib
import os
import re
import shutil
import subprocess

import pytest

from kerf import _bindings
from kerf.dtypes import DType
from kerf.errors import Status

from conftest import REPO

HEADER = REPO / "include" / "kerf.h"
SOURCE = REPO / "Tests" / "CAPI" / "abi_layout.c"
prune = importlib.import_module("kerf.prune")
quantize = importlib.import_module("kerf.quantize")
loss = importlib.import_module("kerf.loss")
optim = importlib.import_module("kerf.optim")
train = importlib.import_module("kerf.train")
student = importlib.import_module("kerf.student")

MIRRORS = {
    "kerf_value_info": _bindings.ValueInfo,
    "kerf_model_metadata": _bindings.ModelMetadata,
    "kerf_session_options": _bindings.SessionOptions,
    "kerf_tensor_view": _bindings.TensorView,
    "kerf_prune_options": _bindings.PruneOptions,
    "kerf_sensitivity_options": _bindings.SensitivityOptions,
    "kerf_quantize_options": _bindings.QuantizeOptions,
    "kerf_loss_term": _bindings.LossTerm,
    "kerf_train_options": _bindings.TrainOptions,
    "kerf_distill_options": _bindings.DistillOptions,
    "kerf_student_options": _bindings.StudentOptions,
}


TRAINING_CONSTANTS = {
    "KERF_LOSS_CROSS_ENTROPY": loss._CROSS_ENTROPY, "KERF_LOSS_MSE": loss._MSE, "KERF_LOSS_L1": loss._L1,
    "KERF_LOSS_HUBER": loss._HUBER, "KERF_LOSS_BCE_WITH_LOGITS": loss._BCE_WITH_LOGITS,
    "KERF_REDUCTION_MEAN": loss._REDUCTIONS["mean"], "KERF_REDUCTION_SUM": loss._REDUCTIONS["sum"],
    "KERF_OPTIMIZER_SGD": optim._SGD, "KERF_OPTIMIZER_ADAM": optim._ADAM, "KERF_OPTIMIZER_ADAMW": optim._ADAMW,
    **{f"KERF_SCHEDULE_{name.upper()}": value for name, value in optim._SCHEDULES.items()},
    **{f"KERF_INIT_{(name or 'none').upper()}": value for name, value in train._INITIALIZATIONS.items()},
    **{f"KERF_DISTILL_{name.upper()}": value for name, value in train._OUTPUT_LOSSES.items()},
    **{f"KERF_MATCH_{name.upper()}": value for name, value in train._MATCH_KINDS.items()},
    **{f"KERF_GRADUAL_{name.upper()}": value for name, value in train._GRADUAL_CRITERIA.items()},
}


def python_constant(name):
    """The binding's value for kerf.h constant `name` (KeyError when it has none)."""
    fixed = {
        "KERF_ABI_VERSION_MAJOR": _bindings.ABI_MAJOR,
        "KERF_PRUNE_MAGNITUDE": prune._METHODS["magnitude"], "KERF_PRUNE_N_OF_M": prune._METHODS["n:m"],
        "KERF_PRUNE_CHANNEL": prune._METHODS["channel"],
        "KERF_PRUNE_SCOPE_LAYER": prune._SCOPES["layer"], "KERF_PRUNE_SCOPE_GLOBAL": prune._SCOPES["global"],
        "KERF_CHANNEL_L1": prune._CRITERIA["l1"], "KERF_CHANNEL_L2": prune._CRITERIA["l2"],
        "KERF_CHANNEL_BN_GAMMA": prune._CRITERIA["bn_gamma"],
        "KERF_QUANTIZE_DYNAMIC": quantize._MODES["dynamic"], "KERF_QUANTIZE_STATIC": quantize._MODES["static"],
        "KERF_CALIBRATE_MINMAX": quantize._METHODS["minmax"], "KERF_CALIBRATE_PERCENTILE": quantize._METHODS["percentile"],
        "KERF_CALIBRATE_ENTROPY": quantize._METHODS["entropy"],
        "KERF_ACTIVATION_UINT8": quantize._ACTIVATIONS["uint8"], "KERF_ACTIVATION_INT8": quantize._ACTIVATIONS["int8"],
        "KERF_DROP_NONE": student._DROP[None], "KERF_DROP_EVERY_OTHER": student._DROP["every-other"], "KERF_DROP_INDICES": 2,
    }
    if name in fixed:
        return fixed[name]
    if name in TRAINING_CONSTANTS:
        return TRAINING_CONSTANTS[name]
    if name.startswith("KERF_DTYPE_"):
        return DType[name[len("KERF_DTYPE_"):]]
    return Status[name[len("KERF_"):]]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """{"structs": {name: (sizeof, field count, [(field, offset, size)])}, "constants": {name: value}}."""
    program = os.environ.get("KERF_ABI_LAYOUT")
    if not program:
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        assert compiler, "a C compiler (cc) is needed to compile Tests/CAPI/abi_layout.c"
        program = str(tmp_path_factory.mktemp("abi") / "abi_layout")
        subprocess.run([compiler, "-std=c11", "-Wall", "-Werror", "-I", str(HEADER.parent), str(SOURCE), "-o", program],
                       check=True)
    result = subprocess.run([program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    structs, constants = {}, {}
    for line in result.stdout.splitlines():
        kind, *rest = line.split()
        if kind == "struct":
            structs[rest[0]] = (int(rest[1]), int(rest[2]), [])
        elif kind == "field":
            structs[rest[0]][2].append((rest[1], int(rest[2]), int(rest[3])))
        else:
            constants[rest[0]] = int(rest[1])
    return {"structs": structs, "constants": constants}


def test_every_public_struct_has_a_ctypes_mirror(layout):
    declared = set(re.findall(r"typedef struct (kerf_\w+) \{", HEADER.read_text()))
    assert set(layout["structs"]) == declared, "abi_layout.c lists every struct kerf.h defines"
    assert set(MIRRORS) == declared


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_ctypes_layout_matches_the_c_compiler(layout, name):
    size, count, fields = layout["structs"][name]
    mirror = MIRRORS[name]
    assert len(fields) == count
    assert len(mirror._fields_) == count, f"{mirror.__name__} has {len(mirror._fields_)} fields, {name} has {count}"
    for (field, offset, field_size), (py_field, _) in zip(fields, mirror._fields_):
        assert py_field == field
        descriptor = getattr(mirror, field)
        assert (descriptor.offset, descriptor.size) == (offset, field_size), f"{name}.{field}"
    assert ctypes.sizeof(mirror) == size


def test_constants_match_the_header(layout):
    constants = layout["constants"]
    text = HEADER.read_text()
    in_header = set(re.findall(r"\b(KERF_[A-Z0-9_]+) = -?\d+", text))
    in_header |= set(re.findall(r"#define (KERF_[A-Z0-9_]+) ", text))
    assert in_header <= set(constants), f"abi_layout.c does not print {sorted(in_header - set(constants))}"
    checked = {name: value for name, value in constants.items() if not name.startswith("KERF_ABI_VERSION")}
    assert {name: int(python_constant(name)) for name in checked} == checked
    statuses = {value for name, value in constants.items() if name[len("KERF_"):] in Status.__members__}
    assert {int(status) for status in Status} == statuses
    assert {int(d) for d in DType} == {v for n, v in constants.items() if n.startswith("KERF_DTYPE_")}


def test_abi_version_of_header_binding_and_library(layout):
    c = layout["constants"]
    assert c["KERF_ABI_VERSION"] == (c["KERF_ABI_VERSION_MAJOR"] << 16) | c["KERF_ABI_VERSION_MINOR"]
    assert _bindings.ABI_MAJOR == c["KERF_ABI_VERSION_MAJOR"]
    assert _bindings.ABI_MINOR <= c["KERF_ABI_VERSION_MINOR"]
    assert _bindings.lib.kerf_abi_version() == c["KERF_ABI_VERSION"], "the library is built from this header"


def test_options_struct_size_is_the_ctypes_sizeof():
    for structure in (_bindings.SessionOptions, _bindings.PruneOptions, _bindings.SensitivityOptions,
                      _bindings.QuantizeOptions, _bindings.TrainOptions):
        assert _bindings.new_options(structure).struct_size == ctypes.sizeof(structure)
