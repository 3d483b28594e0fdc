"""How the node daemon gets into an e2b sandbox: this project's wheel, or the template's copy.

``install: wheel`` builds this project's wheel here once (``pip wheel --no-deps``, cached under
the same version + source-hash key as the cloud-vm wheelhouse, or taken from
``CODEBOLT_WHEELHOUSE``), uploads it through the SDK's files API and installs it into a venv in
the sandbox. The venv sees the template's site-packages, so a template that already carries the
dependencies installs nothing else; otherwise pip fetches them from the sandbox's index (e2b
sandboxes reach the internet unless told not to). ``install: template`` runs the template's own
``codebolt_topo`` and uploads nothing.

Paths in the sandbox are relative to the sandbox user's home (envd's default directory).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.e2b.settings import E2bSettings
from codebolt_topo.providers.wheels import build_cached, source_tree

__all__ = ["SANDBOX_DIR", "install_command", "project_wheel", "serve_command"]

#: The node's directory in the sandbox: launch.json, node.log, the venv, the workspace.
SANDBOX_DIR = ".codebolt"
VENV = f"{SANDBOX_DIR}/venv"


def project_wheel() -> Path:
    """This project's wheel for the running code (built on first use: blocking, seconds)."""
    explicit = os.environ.get("CODEBOLT_WHEELHOUSE")
    if explicit:
        wheels = sorted(Path(explicit).glob("codebolt_topo-*.whl"))
        if not wheels:
            raise ProviderError(f"CODEBOLT_WHEELHOUSE={explicit}: no codebolt_topo wheel there")
        return wheels[-1]
    root = source_tree()
    if root is None:
        raise ProviderError(
            "e2b install: wheel needs this project's wheel: run from a source checkout, set "
            "CODEBOLT_WHEELHOUSE to a directory holding it, or use install: template"
        )
    _, target = build_cached(root, "wheel", ["--no-deps", str(root)], "this project's wheel")
    return next(target.glob("codebolt_topo-*.whl"))


def install_command(settings: E2bSettings, wheel: str) -> str:
    """The shell command that installs ``wheel`` (a path in the sandbox) into the venv.

    The venv is made without pip (ensurepip alone takes seconds) and sees the template's
    site-packages, so the template's pip runs it; ensurepip only when the template has none.
    """
    q = shlex.quote
    python = f"{VENV}/bin/python"
    return (
        f"{q(settings.python)} -m venv --without-pip --system-site-packages {VENV}"
        f" && ({python} -m pip --version >/dev/null 2>&1"
        f" || {python} -m ensurepip --default-pip >/dev/null)"
        f" && {python} -m pip install --quiet --disable-pip-version-check"
        f" --no-warn-script-location {q(wheel)}"
    )


def serve_command(settings: E2bSettings) -> str:
    """The shell command that runs the node daemon from ``launch.json`` in the sandbox. It
    reports ``{"port", "pid"}`` on the FIFO ``ready`` once it listens (opening the FIFO waits
    for its reader: the provider's ``cat``)."""
    python = f"{VENV}/bin/python" if settings.install == "wheel" else shlex.quote(settings.python)
    return (  # envd writes files 0644; the daemon insists on a private config
        f"chmod 600 {SANDBOX_DIR}/launch.json"
        f" && exec {python} -m codebolt_topo.node --config {SANDBOX_DIR}/launch.json --ready-fd 3"
        f" 3>{SANDBOX_DIR}/ready >> {SANDBOX_DIR}/node.log 2>&1"
    )
