"""Wheels of the running code, built here once per source state and cached.

Remote nodes (cloud-vm hosts, e2b sandboxes) must run exactly the code the orchestrator runs,
without our source tree and often without an index. :func:`build_cached` runs ``pip wheel`` on
this checkout into a cache directory named by the project's version and a hash of its sources
(:func:`source_key`), under a lock so that two applies at once build it once; an edited
checkout gets a new key, an unchanged one reuses the build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import codebolt_topo
from codebolt_topo.errors import ProviderError

__all__ = ["build_cached", "cache_root", "source_key", "source_tree"]


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


def source_key(root: Path) -> str:
    """``<version>-<hash of pyproject.toml and the package's files>``."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "codebolt_topo").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{codebolt_topo.__version__}-{digest.hexdigest()[:16]}"


def build_cached(root: Path, kind: str, pip_args: list[str], what: str) -> tuple[str, Path]:
    """``(key, directory)`` of ``pip wheel PIP_ARGS`` for the checkout at ``root``, cached under
    ``cache_root()/KIND/KEY``; built on first use (blocking: seconds). ``what`` names the
    build in the error raised when pip fails."""
    key = source_key(root)
    target = cache_root() / kind / key
    if (target / ".complete").exists():
        return key, target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two applies at once build it once
        if not (target / ".complete").exists():
            _build(target, pip_args, what)
    return key, target


def _build(target: Path, pip_args: list[str], what: str) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(scratch),
                *pip_args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n  ".join(result.stderr.strip().splitlines()[-8:])
            raise ProviderError(f"building {what} failed (pip wheel):\n  {tail}")
        (scratch / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
