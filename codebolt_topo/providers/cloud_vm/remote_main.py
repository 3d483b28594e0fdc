"""The helper a cloud-vm host runs: launch, stop and list node daemons (standard library only).

Its source is sent over SSH and run as ``python3 - COMMAND ARGS`` (see :func:`helper_command`), so
it works before the venv exists and cannot drift from the orchestrator's version. Doing these
steps in Python on the host, rather than in a shell line, gives one exact behaviour everywhere:

* ``launch NODE_DIR PYTHON``: start ``PYTHON -m codebolt_topo.node`` in a new session (so it
  survives the SSH session and its group can be signalled as one), wait for its ready line, and
  print ``{"port", "pid", "start_time"}``; the same record is kept in ``NODE_DIR/launched.json``.
* ``stop NODE_DIR PID START_TIME GRACE``: SIGTERM the daemon's group, SIGKILL it after GRACE
  seconds, then remove NODE_DIR. A pid whose start time differs is someone else's: left alone.
* ``list NODES_ROOT TOPOLOGY LINEAGE``: every node directory carrying those markers, as JSON.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

__all__ = ["helper_command", "helper_source", "main", "start_time"]

READY_TIMEOUT = 30.0


def helper_source() -> str:
    """This module's source, sent to the host on stdin."""
    return Path(__file__).read_text()


def helper_command(python: str, *args: str) -> str:
    """The remote command line that runs this helper with ``args`` (source on stdin)."""
    return " ".join(shlex.quote(part) for part in (python, "-", *args))


def start_time(stat: str) -> int | None:
    """Start time (clock ticks since boot) from a ``/proc/PID/stat`` line; None for a zombie."""
    try:
        fields = stat[stat.rindex(")") + 2 :].split()
    except ValueError:
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _start_time_of(pid: int) -> int | None:
    try:
        return start_time(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def _launch(node_dir: Path, python: str) -> int:
    marker = json.loads((node_dir / "marker.json").read_text())
    env = {**os.environ, **marker["env"]}
    read_fd, write_fd = os.pipe()
    log_fd = os.open(node_dir / "node.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    argv = [
        python,
        "-m",
        "codebolt_topo.node",
        "--config",
        str(node_dir / "launch.json"),
        "--ready-fd",
        "3",
    ]
    try:
        pid = os.posix_spawn(
            python,
            argv,
            env,
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_DUP2, write_fd, 3),
            ],
        )
    finally:
        for fd in (write_fd, log_fd, null_fd):
            os.close(fd)
    started = _start_time_of(pid)
    line = b""
    deadline = time.monotonic() + READY_TIMEOUT
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(read_fd, 4096) if ready else b""
        if not chunk:
            break
        line += chunk
    os.close(read_fd)
    if not line.endswith(b"\n"):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        tail = (node_dir / "node.log").read_text(errors="replace").strip().splitlines()[-8:]
        print("daemon did not become ready; log:\n  " + "\n  ".join(tail), file=sys.stderr)
        return 1
    info = json.loads(line)
    record = {"port": info["port"], "pid": pid, "start_time": started}
    (node_dir / "launched.json").write_text(json.dumps(record))
    print(json.dumps(record))
    return 0


def _stop(node_dir: Path, pid: int, started: int, grace: float) -> int:
    if pid > 0 and _start_time_of(pid) == started:
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _start_time_of(pid) == started and time.monotonic() < deadline:
                time.sleep(0.02)
            if _start_time_of(pid) != started:
                break
    if (node_dir / "marker.json").is_file():  # only ever remove a directory we made
        shutil.rmtree(node_dir, ignore_errors=True)
    return 0


def _list(root: Path, topology: str, lineage: str) -> int:
    found = []
    for marker_path in sorted(root.glob("*/marker.json")):
        try:
            marker = json.loads(marker_path.read_text())
        except (OSError, ValueError):
            continue
        if marker.get("topology") != topology or marker.get("lineage") != lineage:
            continue
        try:
            launched = json.loads((marker_path.parent / "launched.json").read_text())
        except (OSError, ValueError):
            launched = {"pid": 0, "start_time": None, "port": 0}
        found.append({"node": marker["node"], "dir": str(marker_path.parent), **launched})
    print(json.dumps(found))
    return 0


def main(argv: list[str]) -> int:
    """Run one helper command; the exit status is the command's."""
    command, *args = argv
    if command == "launch":
        return _launch(Path(args[0]), args[1])
    if command == "stop":
        return _stop(Path(args[0]), int(args[1]), int(args[2]), float(args[3]))
    if command == "list":
        return _list(Path(args[0]), args[1], args[2])
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
