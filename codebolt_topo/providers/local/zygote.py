"""Local node daemons forked from a warm template process (a *zygote*), not started cold.

A cold daemon is ``python -m codebolt_topo.node``: about 300 ms of CPU importing asyncio,
websockets, pydantic and the node, then ~23 MiB of private memory holding those modules, per
node. On two cores that made ``apply`` of 200 local nodes take 40 s. The zygote imports all of it
once and forks a daemon per request: a fork and the daemon's own start take a few ms, and every
daemon shares the zygote's module pages (copy on write; ``gc.freeze`` keeps the collector from
touching them), so a node costs about 8 MiB of its own.

The zygote is per user, per code version and per mount and user namespace (a daemon's children
inherit the zygote's namespaces and Landlock domain, so a zygote must never serve a caller that
lives elsewhere), reached on a Unix socket in the user's private runtime directory
(:mod:`codebolt_topo.rundir`). A node applying child topologies never uses one: it is a child
subreaper, and a zygote's orphans would land there as strays.

A request carries the daemon's argv, environment and config path, and two descriptors (its log
and its ready pipe); the child becomes a session leader, takes them as stdout/stderr and fd 3,
and runs the daemon. What ``ps`` and ``/proc`` show of the child is what a cold start shows: its
command line and the marker variables are written over the zygote's (padded) argument and
environment areas, so :func:`~codebolt_topo.providers.processes.scan_marked` and anyone reading
``/proc`` find it as before.

Any failure to reach a zygote falls back to the cold start; ``CODEBOLT_ZYGOTE=0`` always does.
The zygote leaves after ``CODEBOLT_ZYGOTE_PERSIST`` idle seconds (600).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebolt_topo.proctree import claim_child
from codebolt_topo.providers.leftovers import CHILD_OF
from codebolt_topo.rundir import detach, private_dir

__all__ = ["fork_daemon", "main", "zygote_socket"]

_PAD = 4096
"""Bytes of argument and environment area a child may rewrite (its command line and markers)."""
_PERSIST = 600.0
_START_TIMEOUT = 20.0


def _fingerprint() -> str:
    """Code version and namespaces: a zygote serves only callers it would start identically."""
    package = Path(__file__).resolve().parents[2]
    marks = [sys.executable, str(os.getuid())]
    for ns in ("mnt", "user"):
        with contextlib.suppress(OSError):
            marks.append(os.readlink(f"/proc/self/ns/{ns}"))
    newest = max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)
    marks.append(str(newest))
    return hashlib.sha256("\0".join(marks).encode()).hexdigest()[:20]


def zygote_socket() -> Path:
    """This caller's zygote socket (in the user's private 0700 directory)."""
    return private_dir() / f"zygote-{_fingerprint()}.sock"


# -- the caller's side -------------------------------------------------------------------------
def fork_daemon(
    argv: list[str], env: Mapping[str, str], config: Path, log_fd: int, ready_fd: int
) -> int | None:
    """Ask this caller's zygote to fork a node daemon for ``config``; its pid, or None when no
    zygote answers (one is then started for the next daemon, and the caller starts this one
    cold). ``argv`` and ``env`` are what a cold start would run with: the child shows them."""
    if os.environ.get("CODEBOLT_ZYGOTE", "1") == "0" or CHILD_OF in os.environ:
        # A node applying child topologies is a child subreaper (node/jobs/reaper.py): a
        # zygote's orphans would land there and be taken for strays of its jobs.
        return None
    try:
        path = zygote_socket()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_START_TIMEOUT)
            try:
                conn.connect(str(path))
            except OSError:
                _start(path)
                return None
            request = {"argv": argv, "env": dict(env), "config": str(config)}
            fds = array.array("i", [log_fd, ready_fd])
            conn.sendmsg(
                [json.dumps(request).encode() + b"\n"],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
            )
            reply = json.loads(conn.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        return None
    pid = reply.get("pid")
    return pid if isinstance(pid, int) else None


def _start(path: Path) -> None:
    """Start a zygote in the background, its argument and environment areas padded so that
    each child can write its own command line and markers there."""
    env = {**os.environ, "CODEBOLT_ZYGOTE_PAD": "_" * _PAD}
    argv = [sys.executable, "-m", "codebolt_topo.providers.local.zygote", str(path), "_" * _PAD]
    claim_child(detach(argv, env, path.with_suffix(".log")))


# -- the zygote --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m codebolt_topo.providers.local.zygote SOCKET PAD``: serve until idle."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0])
    listener = _bind(path)
    if listener is None:
        return 0
    import codebolt_topo.node.daemon  # noqa: F401 - what every child needs, once

    gc.collect()
    gc.freeze()  # the collector never touches these pages again: the children keep sharing them
    signal.signal(signal.SIGCHLD, _reap)
    persist = float(os.environ.get("CODEBOLT_ZYGOTE_PERSIST", _PERSIST))
    listener.settimeout(5.0)
    last = time.monotonic()
    try:
        while time.monotonic() - last < persist and path.exists():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except InterruptedError:
                continue
            with conn:
                _serve(conn, listener)
            last = time.monotonic()
    finally:
        listener.close()
        for leftover in (path, path.with_suffix(".lock"), path.with_suffix(".log")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()  # a clean exit leaves nothing behind (its log included)
    return 0


def _bind(path: Path) -> socket.socket | None:
    import fcntl

    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None  # another zygote serves this socket
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


def _reap(_signum: int, _frame: Any) -> None:
    """Collect children that exited (daemons are ours until they die)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve(conn: socket.socket, listener: socket.socket) -> None:
    conn.settimeout(_START_TIMEOUT)
    data, fds = b"", array.array("i")
    while b"\n" not in data:
        chunk, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(2 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not chunk:
            break
        data += chunk
    try:
        request = json.loads(data.split(b"\n", 1)[0])
        if len(fds) != 2 or not _credentials_match(conn):
            raise ValueError("a request needs the log and ready descriptors, from this user")
        pid = os.fork()
        if pid == 0:
            _child(request, fds[0], fds[1], conn, listener)  # never returns
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except (ValueError, KeyError, OSError) as exc:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
    finally:
        for fd in fds:
            os.close(fd)


def _credentials_match(conn: socket.socket) -> bool:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return bool(struct.unpack("3i", creds)[1] == os.getuid())


def _child(
    request: dict[str, Any],
    log_fd: int,
    ready_fd: int,
    conn: socket.socket,
    listener: socket.socket,
) -> None:
    """Become the daemon: a session of our own, the caller's log and ready pipe, its
    environment, command line and markers; then run it and exit with its status."""
    code = 70
    try:
        conn.close()
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.dup2(ready_fd, 3)
        os.closerange(4, 1 << 16)  # nothing of the zygote's leaks into a node (or its jobs)
        argv = [str(word) for word in request["argv"]]
        env = {str(k): str(v) for k, v in request["env"].items()}
        os.environ.clear()
        os.environ.update(env)
        _show(argv, {k: v for k, v in env.items() if k.startswith("CODEBOLT_")})
        import random

        random.seed()  # not the zygote's sequence
        from codebolt_topo.node.daemon import run_daemon

        sys.argv = argv[2:] if argv[1:2] == ["-m"] else argv
        code = run_daemon(Path(request["config"]), 3)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _show(argv: list[str], markers: Mapping[str, str]) -> None:
    """Write ``argv`` and ``markers`` over this process's argument and environment areas, as
    ``/proc/PID/cmdline`` and ``/proc/PID/environ`` read them (what setproctitle does)."""
    fields = Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()
    # After the command name: fields 3.. ; arg_start is field 48, env_end field 51 (1-based).
    arg_start, arg_end, env_start, env_end = (int(fields[i]) for i in range(45, 49))
    for start, end, words in (
        (arg_start, arg_end, argv),
        (env_start, env_end, [f"{k}={v}" for k, v in markers.items()]),
    ):
        block = b"".join(word.encode() + b"\0" for word in words)[: end - start - 1]
        ctypes.memmove(start, block.ljust(end - start, b"\0"), end - start)


if __name__ == "__main__":
    sys.exit(main())
