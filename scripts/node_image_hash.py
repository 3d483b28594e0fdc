"""Print the content hash that tags a node image: what the image is built from, nothing else.

``scripts/build-node-image.sh`` tags every image ``codebolt-node:src-<hash>`` so that a rebuild
happens exactly when the package sources, the project metadata or the Dockerfile change, and the
test suite can tell whether the image it finds matches the code it is testing. Only the standard
library is used: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

__all__ = ["image_inputs", "source_hash"]

ROOT = Path(__file__).resolve().parents[1]
#: Files and trees whose contents go into the image; anything else cannot change it.
INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "bin", "codebolt_topo")


def image_inputs(root: Path = ROOT) -> list[Path]:
    """Every file that goes into the image, in a stable order."""
    files: list[Path] = []
    for name in INPUTS:
        path = root / name
        if path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        elif path.is_file():
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def source_hash(root: Path = ROOT) -> str:
    """Twelve hex digits over the names and contents of :func:`image_inputs`."""
    digest = hashlib.sha256()
    for path in image_inputs(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    print(source_hash(root))
