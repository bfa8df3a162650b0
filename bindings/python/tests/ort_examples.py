"""Running ONNX Runtime's documented usage examples as written, and with only their import changed
to kerf, for the tests of the ONNX Runtime facade."""

import re

_IMPORT = re.compile(r"^(\s*(?:import|from)\s+)onnxruntime\b", re.MULTILINE)


def run_example(source, module, **names):
    """Executes `source` (example code importing onnxruntime) with `names` as globals and returns
    its globals afterwards. module "kerf" rewrites the onnxruntime imports, and nothing else, to
    kerf's; "onnxruntime" runs the example as written."""
    if module == "kerf":
        source, count = _IMPORT.subn(r"\1kerf", source)
        assert count, "the example imports nothing from onnxruntime"
    else:
        assert module == "onnxruntime", module
    namespace = dict(names)
    exec(compile(source, f"<example run with {module}>", "exec"), namespace)
    return namespace
