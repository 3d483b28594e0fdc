"""How a detached child tells its spawner it is ready: one JSON line on descriptor 3.

The spawner (:func:`codebolt_topo.providers.processes.spawn_detached`) hands the child the write
end of a pipe as :data:`READY_FD` and reads one line; reading that line, not polling a port, is how
readiness is known. Spawner and child are in different layers (providers start node daemons,
tunnels and relays), so the contract between them lives here, below both.
"""

from __future__ import annotations

import json
import os
import select
import sys
from pathlib import Path
from typing import Any

__all__ = ["READY_FD", "daemon_command", "read_ready", "report_ready"]

READY_FD = 3
"""The descriptor on which a spawned child reports readiness (one line, then it closes it)."""


def report_ready(ready_fd: int | None, port: int) -> None:
    """Tell the spawner that this process listens on ``port``: one ``{"port", "pid"}`` line on
    ``ready_fd``, which is then closed."""
    if ready_fd is not None:
        with os.fdopen(ready_fd, "w") as ready:
            ready.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")


def daemon_command(config: Path, ready_fd: int) -> list[str]:
    """The command line of a node daemon started from launch config ``config`` that reports
    readiness on ``ready_fd`` (a spawner's side of the contract)."""
    return [
        sys.executable,
        "-m",
        "codebolt_topo.node",
        "--config",
        str(config),
        "--ready-fd",
        str(ready_fd),
    ]


def read_ready(read_fd: int, timeout: float) -> dict[str, Any] | None:
    """The ready line a child wrote on the pipe ``read_fd`` (closed here), or None when none
    came within ``timeout`` seconds (the child failed, or hangs)."""
    with os.fdopen(read_fd, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], timeout)
        line = pipe.readline() if ready else b""
    if not line:
        return None
    answer: dict[str, Any] = json.loads(line)
    return answer
