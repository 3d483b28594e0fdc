"""``codebolt watch`` as a service: detached with a pid file, or as a systemd unit.

Why: heartbeats and restarts run only while a watcher runs; a terminal that closes stops it.
``--detach`` starts the same command in its own session, its output in a log file, and returns
once the child holds its pid file. The pid file is held with an ``flock`` for the watcher's
whole life, so a second watcher started with the same pid file refuses at once, and a pid file
left by a watcher killed with SIGKILL is known to be stale (nobody holds its lock) instead of
naming a pid the system may have given to another process since.

``--install-unit`` writes a systemd user unit running exactly the command given (less the
service options), so what systemd supervises is what was tried by hand. Secrets never go into
the unit: it reads an ``EnvironmentFile`` the operator fills (the DSN, the key or key file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.engine.statekey import environment_for_child
from codebolt_topo.errors import ConfigError

__all__ = [
    "Detached",
    "PidFile",
    "detach",
    "exec_start",
    "hold_pid_file",
    "stop_detached",
    "unit_name",
    "unit_text",
]


@dataclass(frozen=True, slots=True)
class PidFile:
    """A watcher's pid file and what it says."""

    path: Path

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def held(self) -> bool:
        """Whether a live watcher holds it (its flock), whatever pid it names."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


@contextlib.contextmanager
def hold_pid_file(path: Path) -> Iterator[None]:
    """Write our pid to ``path`` and hold its lock until we exit; refuse when held."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"a watcher already runs with pid file {path} (pid {PidFile(path).read()}): "
            "stop it first (codebolt watch --stop)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Detached:
    pid: int
    pid_file: Path
    log_file: Path


def detach(argv: Sequence[str], pid_file: Path, log_file: Path, timeout: float = 60.0) -> Detached:
    """Start ``codebolt ARGV`` (a foreground watch given ``--pid-file``) in its own session,
    output to ``log_file``; return once it holds its pid file, or fail with its log's tail."""
    if PidFile(pid_file).held():
        raise ConfigError(
            f"a watcher already runs with pid file {pid_file} (pid {PidFile(pid_file).read()})"
        )
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, **environment_for_child()}  # the key, given on purpose to the watcher
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if PidFile(pid_file).read() == child.pid and PidFile(pid_file).held():
            return Detached(child.pid, pid_file, log_file)
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
            raise ConfigError(
                f"the watcher exited at once (status {child.returncode}); its log "
                f"{log_file} ends with:\n  " + "\n  ".join(tail)
            )
        time.sleep(0.05)
    raise ConfigError(f"the watcher did not write {pid_file} within {timeout:g} s: see {log_file}")


def stop_detached(pid_file: Path, timeout: float = 60.0) -> int | None:
    """SIGTERM the watcher holding ``pid_file`` and wait for it to let go; its pid, or None
    when no watcher held it (a stale file is removed)."""
    holder = PidFile(pid_file)
    pid = holder.read()
    if pid is None or not holder.held():
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while holder.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    if holder.held():
        raise ConfigError(f"watcher pid {pid} did not stop within {timeout:g} s")
    return pid


def unit_name(topology: str) -> str:
    return f"codebolt-watch-{topology}.service"


def _quoted(word: str) -> str:
    """One ExecStart word as systemd reads it: ``%`` doubled, quoted when needed."""
    word = word.replace("%", "%%")
    if word and not any(c in word for c in " \t\"'\\;$"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_start(argv: Sequence[str]) -> str:
    """The unit's ExecStart: this interpreter running ``codebolt ARGV``."""
    words = [sys.executable, "-m", "codebolt_topo.cli.main", *argv]
    return " ".join(_quoted(word) for word in words)


def unit_text(
    topology: str, topology_file: Path, argv: Sequence[str], environment_file: Path
) -> str:
    """A systemd (user) unit that keeps ``codebolt ARGV`` running for ``topology``."""
    return (
        "[Unit]\n"
        f"Description=codebolt watch of topology {topology} ({topology_file})\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"WorkingDirectory={_quoted(str(topology_file.parent))}\n"
        "# The state's DSN and key (CODEBOLT_PG_DSN, CODEBOLT_STATE_KEY[_FILE]): never here.\n"
        f"EnvironmentFile=-{environment_file}\n"
        f"ExecStart={exec_start(argv)}\n"
        "KillSignal=SIGTERM\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )
