"""The local provider: each node is a daemon process on this machine.

The daemon is started with ``posix_spawn`` in a new session (so it outlives the CLI and its
process group can be signalled as one), its output appended to ``node.log``, and a pipe on fd 3
on which it writes ``{"port": N, "pid": P}`` once it listens. Reading that line is how we know the
node is ready without polling a port. The handle records the pid *and* the process start time, so
a recycled pid is never mistaken for our node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from codebolt_topo.capabilities import Detection, detect
from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.base import (
    Category,
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
)

__all__ = ["LocalProvider"]

READY_FD = 3
READY_TIMEOUT = 20.0


@functools.cache
def _detected() -> Detection:
    """This machine's capabilities, probed once per process: local nodes run here."""
    return detect()


def _proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    """Collect our own dead child so it does not linger as a zombie; ignore others' pids."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _is_ours(handle: dict[str, Any]) -> bool:
    pid = int(handle["pid"])
    _reap(pid)
    return _proc_start_time(pid) == handle.get("start_time")


class LocalProvider(Provider):
    """Node daemons as processes on this machine, one free port each."""

    name = "local"
    category = Category.LOCAL
    capabilities = frozenset({"python", "local"})
    shares_host_ports = True

    @classmethod
    def base_offers(cls) -> tuple[frozenset[str], dict[str, str]]:
        detection = _detected()  # local nodes run on this very machine
        return detection.found | cls.capabilities, detection.absent

    def node_dir(self, node: str) -> Path:
        return self.context.runtime_dir / "nodes" / node

    async def create(self, launch: NodeLaunch) -> Placement:
        node_dir = self.node_dir(launch.name)
        node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        Path(launch.config.workspace).mkdir(parents=True, exist_ok=True)
        config_path = node_dir / "launch.json"
        _write_private(config_path, launch.config.model_dump_json(indent=2).encode())
        read_fd, write_fd = os.pipe()
        log_fd = os.open(node_dir / "node.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        env = {**os.environ, **self._markers(launch.name)}
        argv = [
            sys.executable,
            "-m",
            "codebolt_topo.node",
            "--config",
            str(config_path),
            "--ready-fd",
            str(READY_FD),
        ]
        try:
            pid = os.posix_spawn(  # noqa: ASYNC221 - returns as soon as the child exists
                sys.executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    (os.POSIX_SPAWN_DUP2, write_fd, READY_FD),
                ],
                setsid=True,
            )
        finally:
            os.close(write_fd)
            os.close(log_fd)
        handle = {"pid": pid, "start_time": _proc_start_time(pid), "dir": str(node_dir)}
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(_read_all, read_fd), READY_TIMEOUT)
        except TimeoutError:
            await self.destroy(handle, grace=1.0)
            raise ProviderError(
                f"node {launch.name!r}: daemon did not become ready within {READY_TIMEOUT:.0f} s"
                f"{_log_tail(node_dir)}"
            ) from None
        if not ready:
            _reap(pid)
            raise ProviderError(
                f"node {launch.name!r}: daemon exited during start{_log_tail(node_dir)}"
            )
        info = json.loads(ready)
        host = launch.config.host
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return Placement(handle=handle, host=connect_host, port=int(info["port"]))

    async def discover(self) -> list[Discovered]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[Discovered]:
        """Node daemons on this machine carrying this topology's and lineage's markers."""
        wanted = {
            b"CODEBOLT_TOPOLOGY=" + self.context.topology.encode(),
            b"CODEBOLT_LINEAGE=" + self.context.lineage.encode(),
        }
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"codebolt_topo.node" not in cmdline:
                    continue  # a job started by a node inherits the markers; only daemons count
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if not wanted <= set(environ):
                continue
            node = next(
                (
                    v[len(b"CODEBOLT_NODE=") :].decode()
                    for v in environ
                    if v.startswith(b"CODEBOLT_NODE=")
                ),
                None,
            )
            start_time = _proc_start_time(pid)
            if node is not None and start_time is not None:
                found.append(Discovered(node=node, handle={"pid": pid, "start_time": start_time}))
        return found

    async def inspect(self, handle: dict[str, Any]) -> Observation:
        if _is_ours(handle):
            return Observation(alive=True)
        return Observation(alive=False, reason=f"process {handle['pid']} is gone")

    async def destroy(self, handle: dict[str, Any], *, grace: float = 5.0) -> None:
        pid = int(handle["pid"])
        gone = await _open_exit_waiter(handle)
        if gone is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(gone), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                await gone
            _reap(pid)
        node_dir = handle.get("dir")
        if node_dir:
            shutil.rmtree(node_dir, ignore_errors=True)

    def _markers(self, node: str) -> dict[str, str]:
        """Environment markers that let a later run recognise (adopt or remove) this process."""
        return {
            "CODEBOLT_TOPOLOGY": self.context.topology,
            "CODEBOLT_NODE": node,
            "CODEBOLT_LINEAGE": self.context.lineage,
        }


async def _open_exit_waiter(handle: dict[str, Any]) -> asyncio.Future[None] | None:
    """A future that completes when our node process exits; None if it is already gone.

    A pidfd becomes readable when the process exits, whoever its parent is, so we wait without
    polling. The start time is checked *after* opening the pidfd, so a recycled pid cannot slip in.
    """
    pid = int(handle["pid"])
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not _is_ours(handle):
        os.close(pidfd)
        return None
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, on_exit)
    return gone


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _log_tail(node_dir: Path, lines: int = 8) -> str:
    try:
        text = (node_dir / "node.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    if not text:
        return ""
    return "; daemon log:\n  " + "\n  ".join(text[-lines:])
