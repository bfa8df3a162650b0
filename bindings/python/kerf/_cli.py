"""The `kerf` console command: runs the kerf executable installed inside this package."""

import os
import sys
from pathlib import Path


def main():
    binary = Path(__file__).resolve().parent / "bin" / "kerf"
    if not binary.is_file():
        sys.exit(f"kerf: the command-line tool is not installed with this package (no {binary}); "
                 "build it with `make release` and run .build/release/kerf")
    os.execv(binary, [str(binary)] + sys.argv[1:])
