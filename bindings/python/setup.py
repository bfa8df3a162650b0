"""Builds Kerf's shared library and CLI into the package.

`pip install ./bindings/python` (or `pip wheel`) runs `swift build` in the repository this
package lies in (release, Swift runtime linked statically: what `make release` builds) and
installs libKerf.so and the `kerf` executable inside the package (kerf/libKerf.so,
kerf/bin/kerf), so that `import kerf` and the `kerf` command work with no environment
variable. A libKerf.so already placed in kerf/ is installed as it is instead, and
KERF_NO_BUILD=1 installs the Python code alone (then set KERF_LIBRARY). The wheel is
platform-specific (it carries x86-64 code) but not tied to a Python version (ctypes)."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        if (HERE / "kerf" / "libKerf.so").exists() or os.environ.get("KERF_NO_BUILD"):
            return
        if not (ROOT / "Package.swift").exists():
            raise RuntimeError(f"kerf: no Package.swift in {ROOT} to build libKerf.so from; place a built libKerf.so "
                               f"in {HERE / 'kerf'} or set KERF_NO_BUILD=1")
        if shutil.which("swift") is None:
            raise RuntimeError("kerf: building libKerf.so needs the Swift toolchain (`swift` on PATH)")
        subprocess.run(["swift", "build", "-c", "release", "-Xswiftc", "-static-stdlib"], cwd=ROOT, check=True)
        products, package = ROOT / ".build" / "release", Path(self.build_lib) / "kerf"
        (package / "bin").mkdir(exist_ok=True)
        for source, target in ((products / "libKerf.so", package / "libKerf.so"), (products / "kerf", package / "bin" / "kerf")):
            shutil.copy2(source, target)
            if shutil.which("strip"):  # debug info is most of the build's size
                subprocess.run(["strip", "--strip-debug", str(target)], check=True)


class NativeDistribution(Distribution):
    """Native code inside: installed into platlib, the wheel tagged with the platform."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: the native code is loaded through ctypes by any Python 3."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=NativeDistribution, cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": PlatformWheel})
