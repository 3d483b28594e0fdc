"""Fuzz the bundle and pack reader: ``python fuzz_pack.py [libFuzzer flags] CORPUS...``.

Inputs are bundles without their pack's trailing SHA-1 (see :mod:`harness`).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["codebolt_topo.narrative"]):
    import harness


def main() -> None:
    atheris.Setup(sys.argv, harness.import_bundle)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
