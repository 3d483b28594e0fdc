"""The wheelhouse a cloud-vm host installs from: this project's wheel, every dependency's, pip's.

Built here with ``pip wheel`` so the remote machine needs neither our source nor an index: it
gets exactly the code the orchestrator runs, and the install works on hosts without internet
access. Builds are cached under a key made of the version and a hash of the source files, so a
second ``apply`` (or a second host) reuses the build and an edited checkout gets a new one. The
same key names the venv on each host, which is how a host knows it is already bootstrapped.

``CODEBOLT_WHEELHOUSE`` names a ready directory of wheels instead (an install from a wheel,
where there is no source tree to build, or an air-gapped orchestrator).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import codebolt_topo
from codebolt_topo.errors import ProviderError

__all__ = ["Wheelhouse", "cache_root", "source_tree", "wheelhouse"]

PROJECT = "codebolt-topo"


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    """A directory of wheels and the key (version + content hash) it was built for."""

    key: str
    directory: Path

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.directory.glob("*.whl"))

    @property
    def pip(self) -> str:
        """File name of the pip wheel, which the host runs pip from (``python pip.whl/pip``):
        the venv is made without pip, which is many times faster than ensurepip."""
        for path in self.wheels:
            if path.name.startswith("pip-"):
                return path.name
        raise ProviderError(f"{self.directory}: no pip wheel in the wheelhouse")


def cache_root() -> Path:
    """``$CODEBOLT_CACHE_DIR``, else ``$XDG_CACHE_HOME/codebolt-topo``, else ``~/.cache/…``."""
    explicit = os.environ.get("CODEBOLT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "codebolt-topo"


def source_tree() -> Path | None:
    """The checkout this package runs from, or None when it was installed from a wheel."""
    root = Path(codebolt_topo.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _content_hash(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "codebolt_topo").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def wheelhouse() -> Wheelhouse:
    """The cached wheelhouse for the running code, built on first use (blocking: seconds)."""
    explicit = os.environ.get("CODEBOLT_WHEELHOUSE")
    if explicit:
        directory = Path(explicit)
        names = sorted(path.name for path in directory.glob("*.whl"))
        if not any(name.startswith("codebolt_topo-") for name in names):
            raise ProviderError(f"CODEBOLT_WHEELHOUSE={explicit}: no codebolt_topo wheel there")
        if not any(name.startswith("pip-") for name in names):
            raise ProviderError(f"CODEBOLT_WHEELHOUSE={explicit}: no pip wheel there")
        return Wheelhouse(hashlib.sha256("\n".join(names).encode()).hexdigest()[:16], directory)
    root = source_tree()
    if root is None:
        raise ProviderError(
            "cloud-vm needs a wheelhouse to install on the host: run from a source checkout, or "
            "set CODEBOLT_WHEELHOUSE to a directory holding codebolt-topo's wheel, its "
            "dependencies' and pip's (pip wheel codebolt-topo pip -w DIR)"
        )
    key = f"{codebolt_topo.__version__}-{_content_hash(root)}"
    target = cache_root() / "wheelhouse" / key
    if (target / ".complete").exists():
        return Wheelhouse(key, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two applies at once build it once
        if not (target / ".complete").exists():
            _build(root, target)
    return Wheelhouse(key, target)


def _build(root: Path, target: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--wheel-dir", str(scratch), str(root), "pip"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            tail = "\n  ".join(result.stderr.strip().splitlines()[-8:])
            raise ProviderError(f"building the cloud-vm wheelhouse failed (pip wheel):\n  {tail}")
        (scratch / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
