"""The wheelhouse a cloud-vm host installs from: this project's wheel, every dependency's, pip's.

Built here with ``pip wheel`` so the remote machine needs neither our source nor an index: it
gets exactly the code the orchestrator runs, and the install works on hosts without internet
access. Builds are cached (:mod:`codebolt_topo.providers.wheels`) under a key made of the version
and a hash of the source files, so a second ``apply`` (or a second host) reuses the build and an
edited checkout gets a new one. The same key names the venv on each host, which is how a host
knows it is already bootstrapped.

``CODEBOLT_WHEELHOUSE`` names a ready directory of wheels instead (an install from a wheel,
where there is no source tree to build, or an air-gapped orchestrator).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.wheels import build_cached, source_tree

__all__ = ["Wheelhouse", "wheelhouse"]

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
    key, target = build_cached(root, "wheelhouse", [str(root), "pip"], "the cloud-vm wheelhouse")
    return Wheelhouse(key, target)
