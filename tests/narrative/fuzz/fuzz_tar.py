"""Fuzz the snapshot tarball reader: ``python fuzz_tar.py [libFuzzer flags] CORPUS...``.

Inputs are uncompressed tars (see :mod:`harness`).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["codebolt_topo.narrative"]):
    import harness


def main() -> None:
    atheris.Setup(sys.argv, harness.import_tar)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
