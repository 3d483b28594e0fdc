"""Node daemons started inside the namespaces of a :class:`~multihost.network.Lab`.

Each is ``python -m codebolt_topo.node`` under ``ip netns exec`` in its own process group, with a
0600 LaunchConfig and a ready pipe (``ip netns exec`` execs, so the pipe's descriptor passes
through). A node the orchestrator cannot reach (the laptop behind NAT) gets its runtime config
in its launch file, as a node started on someone's own machine would. :meth:`NetDaemons.stop`
kills every process group, passed or failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from multihost.network import Lab

from codebolt_topo.readiness import daemon_command, read_ready
from codebolt_topo.wire.config import LaunchConfig

__all__ = ["NetDaemons"]


class NetDaemons:
    def __init__(self, root: Path, lab: Lab) -> None:
        self.root = root
        self.lab = lab
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str, launch: LaunchConfig, timeout: float = 20.0) -> int:
        """Start ``launch``'s node in ``role``'s namespace; returns its port once ready."""
        home = self.root / launch.node
        home.mkdir(parents=True, exist_ok=True)
        path = home / "launch.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(launch.model_dump_json())
        read_fd, write_fd = os.pipe()
        with open(home / "daemon.log", "wb") as log:
            self.procs[launch.node] = subprocess.Popen(
                [*self.lab.prefix(role), *daemon_command(path, write_fd)],
                pass_fds=(write_fd,),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        os.close(write_fd)
        ready = read_ready(read_fd, timeout)
        if ready is None:
            raise RuntimeError(f"node {launch.node} did not start: {self.log(launch.node)[-2000:]}")
        return int(ready["port"])

    def log(self, node: str) -> str:
        path = self.root / node / "daemon.log"
        return path.read_text() if path.exists() else ""

    def stop(self, timeout: float = 5.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs.clear()
