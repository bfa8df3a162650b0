"""ONNX Runtime's SessionOptions and RunOptions, with its attribute names and defaults.

Kerf acts on intra_op_num_threads (0: one thread per core), graph_optimization_level
(ORT_DISABLE_ALL runs the graph as written; any other level runs Kerf's optimizations, which have
no levels) and RunOptions.terminate. InferenceSession warns when enable_profiling or
optimized_model_filepath is set, since it produces no profile and writes no file. The other
attributes and the config entries are kept and have no effect: they tune ONNX Runtime's own
threading, memory arenas and logging."""

from enum import IntEnum


class GraphOptimizationLevel(IntEnum):
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


_LOGGING = {"log_severity_level": -1, "log_verbosity_level": 0, "logid": ""}


class _Options:
    """Attributes with defaults (_DEFAULTS; others raise AttributeError, as ONNX Runtime's do)
    and string config entries."""

    _DEFAULTS = {}
    __slots__ = ("_entries",)

    def __init__(self):
        self._entries = {}
        for name, value in self._DEFAULTS.items():
            setattr(self, name, value)

    def _add_entry(self, key, value):
        """Sets config entry `key` (ONNX Runtime's add_session_config_entry / add_run_config_entry)."""
        self._entries[str(key)] = str(value)

    def _entry(self, key):
        """Config entry `key`; RuntimeError when it was never set, as in ONNX Runtime."""
        try:
            return self._entries[key]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__} does not have configuration with key: {key}") from None


class SessionOptions(_Options):
    _DEFAULTS = {
        "intra_op_num_threads": 0,
        "inter_op_num_threads": 0,
        "graph_optimization_level": GraphOptimizationLevel.ORT_ENABLE_ALL,
        "execution_mode": ExecutionMode.ORT_SEQUENTIAL,
        "enable_profiling": False,
        "optimized_model_filepath": "",
        "profile_file_prefix": "onnxruntime_profile_",
        "enable_cpu_mem_arena": True,
        "enable_mem_pattern": True,
        "enable_mem_reuse": True,
        "use_deterministic_compute": False,
        "use_per_session_threads": True,
        **_LOGGING,
    }
    __slots__ = tuple(_DEFAULTS)
    add_session_config_entry = _Options._add_entry
    get_session_config_entry = _Options._entry


class RunOptions(_Options):
    _DEFAULTS = {
        "terminate": False,
        "only_execute_path_to_fetches": False,
        **_LOGGING,
    }
    __slots__ = tuple(_DEFAULTS)
    add_run_config_entry = _Options._add_entry
    get_run_config_entry = _Options._entry
