"""Points KERF_LIBRARY at the repository's build when the Makefile did not.

Must run before `import kerf`; pytest imports conftest.py before the test
modules. When both builds exist the most recently built one wins."""

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE_ROOT = TESTS.parent  # bindings/python
REPO = TESTS.parents[2]

if not os.environ.get("KERF_LIBRARY"):
    candidates = [REPO / ".build" / config / "libKerf.so" for config in ("release", "debug")]
    built = [path for path in candidates if path.is_file()]
    if built:
        os.environ["KERF_LIBRARY"] = str(max(built, key=lambda path: path.stat().st_mtime))

# Always test this source tree, not a kerf installed in site-packages.
if str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The demo's digits MLP (scikit-learn, skl2onnx) and its test split: (path, x, y)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import train_digits

    folder = tmp_path_factory.mktemp("digits")
    argv, sys.argv = sys.argv, ["train_digits.py", str(folder)]
    try:
        train_digits.main()
    finally:
        sys.argv = argv
    data = np.load(folder / "digits_test.npz")
    return folder / "digits_mlp.onnx", data["x"], data["y"]
