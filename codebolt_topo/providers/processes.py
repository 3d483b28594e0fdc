"""Detached helper processes on this machine: start, recognise, wait for and stop them.

Local node daemons and cloud-vm tunnel processes live the same life: they must outlive the CLI
that started them, tell it when they are ready, be recognised later by a run that lost track of
them, and be stopped without ever hitting a recycled pid. That life is implemented once, here.

- :func:`spawn_detached` starts ``argv`` with ``posix_spawn`` in a new session (its process group
  can be signalled as one), stdin from ``/dev/null``, stdout and stderr appended to a log (0600),
  and a pipe on fd 3 on which the child writes one line once it is ready. Reading that line, not
  polling a port, is how readiness is known.
- A :data:`handle <ProcessHandle>` records the pid *and* the process start time (clock ticks since
  boot, from ``/proc``): :func:`is_ours` compares both, so a pid reused by another process is
  never taken for ours.
- :func:`stop_group` waits through a pidfd (readable when the process exits, whoever its parent
  is), SIGTERM first, SIGKILL after the grace period.
- :func:`scan_marked` finds processes by the marker variables in their environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from codebolt_topo.errors import ProviderError
from codebolt_topo.proctree import claim_child, read_stat
from codebolt_topo.readiness import READY_FD, report_ready

__all__ = [
    "READY_FD",
    "Marked",
    "ProcessHandle",
    "Spawned",
    "helper_main",
    "is_ours",
    "log_tail",
    "proc_start_time",
    "reap",
    "report_ready",
    "scan_marked",
    "spawn_detached",
    "stop_group",
    "write_private",
]


class ProcessHandle(TypedDict):
    """How a detached process is recognised later: its pid and start time (clock ticks since
    boot; None when it was already gone), so a recycled pid is never taken for it."""

    pid: int
    start_time: int | None


@dataclass(frozen=True, slots=True)
class Spawned:
    """A detached child that reported ready: its pid, start time and the line it wrote."""

    pid: int
    start_time: int | None
    ready: bytes

    @property
    def handle(self) -> ProcessHandle:
        return {"pid": self.pid, "start_time": self.start_time}


@dataclass(frozen=True, slots=True)
class Marked:
    """A process found by its markers: pid, start time, command line and environment."""

    pid: int
    start_time: int
    cmdline: list[bytes]
    environ: dict[str, str]


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    stat = read_stat(pid)
    return None if stat is None or stat.zombie else stat.start


def reap(pid: int) -> None:
    """Collect our own dead child so it does not linger as a zombie; ignore others' pids."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_ours(handle: Mapping[str, Any]) -> bool:
    """Whether the process ``handle`` recorded still runs (same pid, same start time)."""
    pid = int(handle["pid"])
    reap(pid)
    return proc_start_time(pid) == handle.get("start_time")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (configs carry tokens)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of ``log``, formatted to end an error message ('' when there are none)."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    if not text:
        return ""
    return f"; {log.stem} log:\n  " + "\n  ".join(text[-lines:])


Forker = Callable[[int, int], int | None]
"""Starts the child another way, given its log and ready-pipe descriptors: its pid, or None to
start it with ``posix_spawn`` after all (the local provider's zygote, ``local/zygote.py``)."""


async def spawn_detached(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    what: str,
    timeout: float,
    forker: Forker | None = None,
) -> Spawned:
    """Start ``argv`` detached and wait for its ready line on fd 3.

    Raises :class:`ProviderError` ending with the tail of ``log`` when the child exits before it
    is ready, or when ``timeout`` s pass first (then the child is stopped: nothing is left
    behind). ``what`` names the child in those errors ("node 'a': daemon", "ssh tunnel").
    """
    read_fd, write_fd = os.pipe()
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        forked = None if forker is None else await asyncio.to_thread(forker, log_fd, write_fd)
        pid = forked or os.posix_spawn(  # noqa: ASYNC221 - returns as soon as the child exists
            argv[0],
            argv,
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_DUP2, write_fd, READY_FD),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
        os.close(log_fd)
    start_time = proc_start_time(pid)
    claim_child(pid)  # ours to collect, not a job's orphan (when a node daemon starts it)
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(_read_all, read_fd), timeout)
    except TimeoutError:
        await stop_group({"pid": pid, "start_time": start_time}, grace=1.0)
        raise ProviderError(
            f"{what} did not become ready within {timeout:.0f} s{log_tail(log)}"
        ) from None
    if not ready:
        reap(pid)
        raise ProviderError(f"{what} exited during start{log_tail(log)}")
    return Spawned(pid=pid, start_time=start_time, ready=ready)


def helper_main(
    argv: list[str] | None,
    *,
    module: str,
    description: str,
    serve: Callable[[dict[str, Any], int | None], Coroutine[Any, Any, int]],
    quiet: tuple[str, ...] = (),
) -> int:
    """The entry point of a helper process (``python -m MODULE --config PATH --ready-fd N``):
    log to stderr (the spawner's log file), quieten the ``quiet`` loggers, then run
    ``serve(config, ready_fd)`` and return its exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    config = json.loads(args.config.read_text())
    return asyncio.run(serve(config, args.ready_fd))


async def stop_group(handle: Mapping[str, Any], *, grace: float) -> None:
    """SIGTERM the process group of ``handle``, SIGKILL after ``grace`` s; nothing if it is
    gone (or its pid now belongs to someone else)."""
    if "pid" not in handle:
        return
    pid = int(handle["pid"])
    gone = await _exit_waiter(handle)
    if gone is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        os.killpg(pid, signal.SIGCONT)  # a stopped (hung) group acts on SIGTERM only once resumed
    try:
        await asyncio.wait_for(asyncio.shield(gone), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await gone
    reap(pid)


def scan_marked(
    markers: Mapping[str, str], cmdline_has: Callable[[list[bytes]], bool]
) -> list[Marked]:
    """Processes of this user whose environment carries every ``markers`` entry and whose
    command line passes ``cmdline_has`` (children inherit markers; the test tells them apart)."""
    wanted = {f"{key}={value}".encode() for key, value in markers.items()}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not cmdline_has(cmdline):
                continue
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if not wanted <= set(raw):
            continue
        start_time = proc_start_time(pid)
        if start_time is None:
            continue
        environ = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        found.append(Marked(pid=pid, start_time=start_time, cmdline=cmdline, environ=environ))
    return found


async def _exit_waiter(handle: Mapping[str, Any]) -> asyncio.Future[None] | None:
    """A future that completes when the process exits; None if it is already gone.

    The start time is checked *after* opening the pidfd, so a recycled pid cannot slip in.
    """
    pid = int(handle["pid"])
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not is_ours(handle):
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


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
