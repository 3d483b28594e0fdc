"""Entrypoint of the node image: hand the launch config to the daemon without leaving it around.

The docker provider passes the LaunchConfig in the ``CODEBOLT_LAUNCH_CONFIG`` environment
variable, because a sandboxed container has a read-only root filesystem and no host bind mount
(nothing of the host should be visible to untrusted code). Before the daemon starts, this module:

* removes the variable from the environment, so commands the node executes do not inherit it;
* feeds the config to the daemon through a pipe (``--config /dev/fd/N``, mode 0600 like a private
  file), so it never exists as a file in the container;
* marks the daemon process non-dumpable. The daemon keeps in memory the tokens it presents to its
  peers (pushed later with ``configure``); executed code runs under the same uid, and without
  this it could read them from ``/proc/<daemon>/mem`` or ``environ``. A non-dumpable process's
  ``/proc`` entries belong to root, and the container holds no capability to bypass that. The flag
  is reset by ``execve``, so executed commands stay ordinary processes.
* prints one ``codebolt-capabilities {json}`` line on stderr (python version, gpu, browser) that
  the provider reads from the container log.

Without the variable it is exactly ``python -m codebolt_topo.node``, so the image also runs by hand.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["CAPABILITIES_MARKER", "ENV_CONFIG", "main", "probe_capabilities"]

ENV_CONFIG = "CODEBOLT_LAUNCH_CONFIG"
CAPABILITIES_MARKER = "codebolt-capabilities "
_PR_SET_DUMPABLE = 4
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "firefox")


def probe_capabilities() -> dict[str, Any]:
    """What this container can offer, detected rather than declared."""
    gpus = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
    browser = next((name for name in _BROWSERS if shutil.which(name)), None)
    return {
        "python": platform.python_version(),
        "gpu": len(gpus),
        "nvidia_smi": shutil.which("nvidia-smi") is not None,
        "browser": browser,
        "uid": os.getuid(),
    }


def _make_undumpable() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _config_pipe(data: bytes) -> str:
    """A ``/dev/fd`` path from which the daemon reads ``data`` once (the fd is not inherited)."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)

    # A thread, because a large config (many env entries) could exceed the pipe buffer.
    threading.Thread(target=feed, name="config-feed", daemon=True).start()
    return f"/dev/fd/{read_fd}"


def main(argv: list[str] | None = None) -> int:
    """Run the node daemon as described in the module docstring; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    raw = os.environ.pop(ENV_CONFIG, None)
    if not _make_undumpable():
        print("codebolt-entry: could not mark the daemon non-dumpable", file=sys.stderr)
    print(CAPABILITIES_MARKER + json.dumps(probe_capabilities()), file=sys.stderr, flush=True)
    if raw is not None:
        args = ["--config", _config_pipe(raw.encode()), *args]
    from codebolt_topo.node.__main__ import main as node_main

    return node_main(args)


if __name__ == "__main__":
    sys.exit(main())
