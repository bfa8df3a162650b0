"""Running ONNX Runtime's documented usage examples as written, and with only their import changed
to kerf, for the tests of the ONNX Runtime facade."""

import re
import types

# "import onnxruntime [as name]" and "from onnxruntime[.module] import ..." lines.
_IMPORT = re.compile(r"^(\s*)(import onnxruntime(?: as (\w+))?[ \t]*$|from onnxruntime\b)", re.MULTILINE)


def _kerf_import(match):
    indent, statement, alias = match.groups()
    if statement.startswith("from"):
        return f"{indent}from kerf"
    return f"{indent}import kerf as {alias or 'onnxruntime'}"


def run_example(source, module, **names):
    """Executes `source` (example code importing onnxruntime) with `names` as globals and returns
    its globals afterwards. module "kerf" rewrites the onnxruntime imports, and nothing else, to
    kerf's; "onnxruntime" runs the example as written."""
    if module == "kerf":
        source, count = _IMPORT.subn(_kerf_import, source)
        assert count, "the example imports nothing from onnxruntime"
    else:
        assert module == "onnxruntime", module
    namespace = dict(names)
    exec(compile(source, f"<example run with {module}>", "exec"), namespace)
    used = {getattr(value, "__module__", None) or getattr(value, "__name__", "") for value in namespace.values()
            if isinstance(value, (types.ModuleType, type, types.FunctionType))}
    assert not any(name.split(".")[0] == {"kerf": "onnxruntime", "onnxruntime": "kerf"}[module] for name in used), used
    return namespace
