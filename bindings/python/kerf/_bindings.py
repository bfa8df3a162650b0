"""ctypes declarations for every function in include/kerf.h, and `check`.

The library is found through the KERF_LIBRARY environment variable (the full
path of the .so), else as libKerf.so next to this file. A library whose ABI
major differs from ABI_MAJOR is refused.
"""

import ctypes
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from .errors import KerfError, Status

ABI_MAJOR = 1  # KERF_ABI_VERSION_MAJOR this binding was written for
ABI_MINOR = 12  # the oldest minor with everything declared below (kerf_tensor_info: 1.1; kerf_prune, sparse_kernels: 1.2;
               # kerf_quantize, kerf_session_plan: 1.3; kerf_session_run_views, kerf_tensors_free: 1.4;
               # kerf_session_run_into: 1.5; kerf_instruction_set: 1.6;
               # kerf_set_memory_limit, kerf_memory_limit, memory_limit: 1.7;
               # kerf_*_options_init_sized, kerf_prune_options.progress: 1.8; training: 1.9;
               # kerf_value_info.dim_names, kerf_model_get_metadata, keep_sparsity, gradual_*, kerf_distill: 1.10;
               # kerf_train_options.qat, qat_range_momentum, kerf_distill_options.match_*, kerf_student, gradual_criterion: 1.11;
               # kerf_prune_options.channel_multiple: 1.12)
# The structs below mirror include/kerf.h field by field; tests/test_abi_layout.py compares
# them (and the constants of errors.py, dtypes.py, prune.py and quantize.py) with what a C
# compiler makes of the header.


def _library_path():
    from_env = os.environ.get("KERF_LIBRARY")
    if from_env:
        if not os.path.isfile(from_env):
            raise ImportError(f"kerf: KERF_LIBRARY is set to {from_env!r}, which is not a file")
        return from_env
    bundled = Path(__file__).resolve().parent / "libKerf.so"
    if bundled.is_file():
        return str(bundled)
    raise ImportError(
        "kerf: cannot find the Kerf library. Set KERF_LIBRARY to the full path of "
        f"libKerf.so, or place libKerf.so in {bundled.parent} (before installing the package)."
    )


def _load():
    path = _library_path()
    try:
        return ctypes.CDLL(path)
    except OSError as error:
        raise ImportError(f"kerf: cannot load {path}: {error}") from error


def check_abi(version, path="the Kerf library"):
    """Raises ImportError unless `version` (a kerf_abi_version() value) has ABI_MAJOR and at
    least ABI_MINOR."""
    major, minor = version >> 16, version & 0xFFFF
    if major != ABI_MAJOR or minor < ABI_MINOR:
        raise ImportError(
            f"kerf: {path} has ABI version {major}.{minor}, but this binding needs "
            f"ABI {ABI_MAJOR}.{ABI_MINOR} or a later {ABI_MAJOR}.x; install matching versions of the library and binding"
        )


# Opaque handles. Typed pointers let ctypes reject a model passed as a tensor.
class Tensor(Structure):
    pass


class Model(Structure):
    pass


class Session(Structure):
    pass


class Trainer(Structure):
    pass


TensorP = POINTER(Tensor)
ModelP = POINTER(Model)
SessionP = POINTER(Session)
TrainerP = POINTER(Trainer)


class ValueInfo(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("name", c_char_p),
        ("dtype", c_int32),
        ("rank_known", c_int32),
        ("rank", c_size_t),
        ("dims", POINTER(c_int64)),
        ("dim_names", POINTER(c_char_p)),
    ]


class ModelMetadata(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("producer_name", c_char_p),
        ("producer_version", c_char_p),
        ("domain", c_char_p),
        ("doc_string", c_char_p),
        ("graph_name", c_char_p),
        ("graph_doc_string", c_char_p),
        ("model_version", c_int64),
        ("n_properties", c_size_t),
        ("property_keys", POINTER(c_char_p)),
        ("property_values", POINTER(c_char_p)),
    ]


class TensorView(Structure):
    """kerf_tensor_view: a tensor described in place (dims and data borrowed)."""
    _fields_ = [
        ("dtype", c_int32),
        ("rank", c_size_t),
        ("dims", POINTER(c_int64)),
        ("data", c_void_p),
        ("byte_size", c_size_t),
    ]


class SessionOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("threads", c_int32),
        ("optimization_level", c_int32),
        ("sparse_kernels", c_int32),
        ("memory_limit", c_uint64),
        ("kept_values", POINTER(c_char_p)),
        ("n_kept_values", c_size_t),
    ]


ReleaseCallback = CFUNCTYPE(None, c_void_p, c_void_p)
ProgressCallback = CFUNCTYPE(c_int32, c_void_p, c_int64, c_int64, c_char_p)


class PruneOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("method", c_int32),
        ("scope", c_int32),
        ("sparsity", c_double),
        ("max_tensor_sparsity", c_double),
        ("n", c_int32),
        ("m", c_int32),
        ("channel_criterion", c_int32),
        ("store_sparse", c_int32),
        ("min_elements", c_int64),
        ("exclude", POINTER(c_char_p)),
        ("n_exclude", c_size_t),
        ("per_tensor_names", POINTER(c_char_p)),
        ("per_tensor_sparsity", POINTER(c_double)),
        ("n_per_tensor", c_size_t),
        ("progress", ProgressCallback),  # ABI 1.8
        ("progress_user_data", c_void_p),
        ("channel_multiple", c_int32),  # ABI 1.12
    ]


class SensitivityOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("levels", POINTER(c_double)),
        ("n_levels", c_size_t),
        ("exclude", POINTER(c_char_p)),
        ("n_exclude", c_size_t),
        ("min_elements", c_int64),
        ("batch_size", c_int64),
        ("threads", c_int32),
        ("progress", ProgressCallback),
        ("progress_user_data", c_void_p),
    ]

CalibrationCallback = CFUNCTYPE(c_int32, c_void_p, c_int64, POINTER(c_char_p), c_size_t, POINTER(TensorP))


class QuantizeOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("mode", c_int32),
        ("method", c_int32),
        ("percentile", c_double),
        ("activation_type", c_int32),
        ("per_channel", c_int32),
        ("quantize_embeddings", c_int32),
        ("threads", c_int32),
        ("op_types", POINTER(c_char_p)),
        ("n_op_types", c_size_t),
        ("exclude", POINTER(c_char_p)),
        ("n_exclude", c_size_t),
        ("auto_tolerance", c_double),
        ("smooth_quant_alpha", c_double),
        ("calibration", CalibrationCallback),
        ("calibration_user_data", c_void_p),
        ("calibration_batches", c_int64),
        ("progress", ProgressCallback),
        ("progress_user_data", c_void_p),
        ("validation", CalibrationCallback),  # ABI 1.4
        ("validation_user_data", c_void_p),
        ("validation_batches", c_int64),
    ]


class LossTerm(Structure):
    _fields_ = [
        ("kind", c_int32),
        ("output", c_char_p),
        ("target", c_char_p),
        ("weight", c_double),
        ("from_probabilities", c_int32),
        ("label_smoothing", c_double),
        ("delta", c_double),
    ]


TrainProgressCallback = CFUNCTYPE(c_int32, c_void_p, c_int64, c_int64, c_int64, c_double, c_double)
BatchCallback = CFUNCTYPE(c_int32, c_void_p, c_int64, c_int64, POINTER(c_char_p), c_size_t, POINTER(TensorP))


class TrainOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("loss", POINTER(LossTerm)),
        ("n_loss", c_size_t),
        ("reduction", c_int32),
        ("optimizer", c_int32),
        ("lr", c_double),
        ("momentum", c_double),
        ("dampening", c_double),
        ("nesterov", c_int32),
        ("weight_decay", c_double),
        ("beta1", c_double),
        ("beta2", c_double),
        ("eps", c_double),
        ("amsgrad", c_int32),
        ("no_decay", POINTER(c_char_p)),
        ("n_no_decay", c_size_t),
        ("max_grad_norm", c_double),
        ("accumulation_steps", c_int32),
        ("schedule", c_int32),
        ("step_size", c_int64),
        ("gamma", c_double),
        ("milestones", POINTER(c_int64)),
        ("n_milestones", c_size_t),
        ("t_max", c_int64),
        ("eta_min", c_double),
        ("warmup_steps", c_int64),
        ("total_steps", c_int64),
        ("final_fraction", c_double),
        ("max_lr", c_double),
        ("pct_start", c_double),
        ("div_factor", c_double),
        ("final_div_factor", c_double),
        ("trainable", POINTER(c_char_p)),
        ("n_trainable", c_size_t),
        ("frozen", POINTER(c_char_p)),
        ("n_frozen", c_size_t),
        ("threads", c_int32),
        ("optimization_level", c_int32),
        ("initialization", c_int32),
        ("initialization_seed", c_uint64),
        ("training_mode", c_int32),
        ("data_names", POINTER(c_char_p)),
        ("data", POINTER(TensorP)),
        ("n_data", c_size_t),
        ("batches", BatchCallback),
        ("batches_user_data", c_void_p),
        ("validation_names", POINTER(c_char_p)),
        ("validation", POINTER(TensorP)),
        ("n_validation", c_size_t),
        ("epochs", c_int64),
        ("max_steps", c_int64),
        ("batch_size", c_int64),
        ("shuffle", c_int32),
        ("seed", c_uint64),
        ("patience", c_int64),
        ("restore_best", c_int32),
        ("checkpoint_path", c_char_p),
        ("checkpoint_every", c_int64),
        ("resume_from", c_char_p),
        ("progress", TrainProgressCallback),
        ("progress_user_data", c_void_p),
        ("keep_sparsity", c_int32),  # ABI 1.10
        ("gradual_sparsity", c_double),
        ("gradual_initial_sparsity", c_double),
        ("gradual_start_step", c_int64),
        ("gradual_end_step", c_int64),
        ("gradual_every", c_int64),
        ("qat", POINTER(QuantizeOptions)),  # ABI 1.11
        ("qat_range_momentum", c_double),
        ("gradual_criterion", c_int32),
    ]


class StudentOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("drop", c_int32),
        ("drop_indices", POINTER(c_int64)),
        ("n_drop_indices", c_size_t),
        ("narrow", c_double),
    ]


class DistillOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("output_loss", c_int32),
        ("temperature", c_double),
        ("alpha", c_double),
        ("labels", c_char_p),
        ("student_values", POINTER(c_char_p)),
        ("teacher_values", POINTER(c_char_p)),
        ("n_values", c_size_t),
        ("teacher_threads", c_int32),
        ("match_students", POINTER(c_char_p)),  # ABI 1.11
        ("match_teachers", POINTER(c_char_p)),
        ("match_kinds", POINTER(c_int32)),
        ("match_weights", POINTER(c_double)),
        ("n_matches", c_size_t),
    ]

lib = _load()


def _declare(name, restype, *argtypes):
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


# Library
_declare("kerf_version", c_char_p)
_declare("kerf_abi_version", c_uint32)
check_abi(lib.kerf_abi_version(), getattr(lib, "_name", "the Kerf library"))
_declare("kerf_last_error", c_char_p)
_declare("kerf_instruction_set", c_char_p)
_declare("kerf_free", None, c_void_p)
_declare("kerf_set_memory_limit", None, c_uint64)
_declare("kerf_memory_limit", c_uint64)

# Tensors
_declare("kerf_tensor_create", c_int32,
         c_int32, POINTER(c_int64), c_size_t, c_void_p, c_size_t, POINTER(TensorP))
_declare("kerf_tensor_wrap", c_int32,
         c_int32, POINTER(c_int64), c_size_t, c_void_p, c_size_t, ReleaseCallback, c_void_p,
         POINTER(TensorP))
_declare("kerf_tensor_free", None, TensorP)
_declare("kerf_tensors_free", None, POINTER(TensorP), c_size_t)
_declare("kerf_tensor_dtype", c_int32, TensorP, POINTER(c_int32))
_declare("kerf_tensor_shape", c_int32, TensorP, POINTER(POINTER(c_int64)), POINTER(c_size_t))
_declare("kerf_tensor_data", c_int32, TensorP, POINTER(c_void_p), POINTER(c_size_t))
_declare("kerf_tensor_info", c_int32, TensorP, POINTER(c_int32), POINTER(POINTER(c_int64)), POINTER(c_size_t),
         POINTER(c_void_p), POINTER(c_size_t))

# Models
_declare("kerf_model_load", c_int32, c_char_p, POINTER(ModelP))
_declare("kerf_model_load_bytes", c_int32, c_void_p, c_size_t, POINTER(ModelP))
_declare("kerf_model_save", c_int32, ModelP, c_char_p)
_declare("kerf_model_save_bytes", c_int32, ModelP, POINTER(c_void_p), POINTER(c_size_t))
_declare("kerf_model_free", None, ModelP)
_declare("kerf_model_input_count", c_int32, ModelP, POINTER(c_size_t))
_declare("kerf_model_output_count", c_int32, ModelP, POINTER(c_size_t))
_declare("kerf_model_input", c_int32, ModelP, c_size_t, POINTER(ValueInfo))
_declare("kerf_model_output", c_int32, ModelP, c_size_t, POINTER(ValueInfo))
_declare("kerf_model_get_metadata", c_int32, ModelP, POINTER(ModelMetadata))

# Sessions
_declare("kerf_session_options_init_sized", c_int32, POINTER(SessionOptions), c_size_t)
_declare("kerf_session_create", c_int32, ModelP, POINTER(SessionOptions), POINTER(SessionP))
_declare("kerf_session_free", None, SessionP)
_declare("kerf_session_plan", c_int32, SessionP, POINTER(c_void_p))
_declare("kerf_session_run", c_int32,
         SessionP, POINTER(c_char_p), POINTER(TensorP), c_size_t,
         POINTER(c_char_p), POINTER(TensorP), c_size_t)
_declare("kerf_session_run_views", c_int32,
         SessionP, POINTER(c_char_p), POINTER(TensorView), c_size_t,
         POINTER(c_char_p), POINTER(TensorP), POINTER(TensorView), c_size_t)
_declare("kerf_session_run_into", c_int32,
         SessionP, POINTER(c_char_p), POINTER(TensorView), c_size_t,
         POINTER(c_char_p), POINTER(TensorP), POINTER(TensorView), c_size_t)
# kerf_session_run_into with every pointer passed as an address (a Python int): about 1 us
# less per call than converting ctypes arrays. For the run loop, which keeps its arrays alive.
run_into_by_address = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)(
    ctypes.cast(lib.kerf_session_run_into, c_void_p).value)

# Compression
_declare("kerf_prune_options_init_sized", c_int32, POINTER(PruneOptions), c_size_t)
_declare("kerf_prune", c_int32, ModelP, POINTER(PruneOptions), POINTER(c_void_p))
_declare("kerf_sensitivity_options_init_sized", c_int32, POINTER(SensitivityOptions), c_size_t)
_declare("kerf_sensitivity", c_int32, ModelP, POINTER(c_char_p), POINTER(TensorP), c_size_t, TensorP,
         POINTER(SensitivityOptions), POINTER(c_void_p))
_declare("kerf_quantize_options_init_sized", c_int32, POINTER(QuantizeOptions), c_size_t)
_declare("kerf_quantize", c_int32, ModelP, POINTER(QuantizeOptions), POINTER(c_void_p))
_declare("kerf_student_options_init_sized", c_int32, POINTER(StudentOptions), c_size_t)
_declare("kerf_student", c_int32, ModelP, POINTER(StudentOptions), POINTER(c_void_p))

# Training
_declare("kerf_train_options_init_sized", c_int32, POINTER(TrainOptions), c_size_t)
_declare("kerf_trainer_create", c_int32, ModelP, POINTER(TrainOptions), POINTER(TrainerP))
_declare("kerf_trainer_free", None, TrainerP)
for _name in ("kerf_trainer_step", "kerf_trainer_backward", "kerf_trainer_evaluate"):
    _declare(_name, c_int32, TrainerP, POINTER(c_char_p), POINTER(TensorP), c_size_t, POINTER(c_double))
_declare("kerf_trainer_parameter_count", c_int32, TrainerP, POINTER(c_size_t))
_declare("kerf_trainer_parameter_name", c_int32, TrainerP, c_size_t, POINTER(c_char_p))
_declare("kerf_trainer_parameter", c_int32, TrainerP, c_char_p, POINTER(TensorP))
_declare("kerf_trainer_gradient", c_int32, TrainerP, c_char_p, POINTER(TensorP))
_declare("kerf_trainer_progress", c_int32, TrainerP, POINTER(c_int64), POINTER(c_double))
_declare("kerf_trainer_model", c_int32, TrainerP, POINTER(ModelP))
_declare("kerf_trainer_checkpoint", c_int32, TrainerP, c_char_p)
_declare("kerf_trainer_restore", c_int32, TrainerP, c_char_p)
_declare("kerf_train", c_int32, ModelP, POINTER(TrainOptions), POINTER(c_void_p))
_declare("kerf_distill_options_init_sized", c_int32, POINTER(DistillOptions), c_size_t)
_declare("kerf_distill", c_int32, ModelP, ModelP, POINTER(TrainOptions), POINTER(DistillOptions), POINTER(c_void_p))


def new_options(structure):
    """An options struct (SessionOptions, PruneOptions, SensitivityOptions, QuantizeOptions,
    StudentOptions, TrainOptions or DistillOptions) holding the library's defaults, its struct_size that of the ctypes declaration."""
    init = {SessionOptions: lib.kerf_session_options_init_sized, PruneOptions: lib.kerf_prune_options_init_sized,
            SensitivityOptions: lib.kerf_sensitivity_options_init_sized,
            QuantizeOptions: lib.kerf_quantize_options_init_sized, TrainOptions: lib.kerf_train_options_init_sized,
            DistillOptions: lib.kerf_distill_options_init_sized, StudentOptions: lib.kerf_student_options_init_sized}[structure]
    options = structure()
    check(init(ctypes.byref(options), ctypes.sizeof(options)))
    return options


def take_string(pointer):
    """The text of a C string Kerf returned (a c_void_p), freed with kerf_free."""
    if not pointer.value:
        return ""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        lib.kerf_free(pointer)


def last_error():
    message = lib.kerf_last_error()
    return message.decode("utf-8", errors="replace") if message else ""


def check(status):
    """Raises KerfError(status, kerf_last_error()) unless status is KERF_OK."""
    if status != Status.OK:
        raise KerfError(status, last_error() or "(no message)")
