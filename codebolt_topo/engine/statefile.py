"""The state file on disk: atomic writes, 0600, one writer at a time.

Layout beside the topology file::

    .codebolt/<name>.state.json   the state (tokens inside: mode 0600)
    .codebolt/<name>.lock         the lock (flock; its content names the holder)
    .codebolt/<name>/             per-node runtime files (launch configs, logs, workspaces)

Why flock: the kernel releases it when the holder dies, even by SIGKILL, so a crashed run never
leaves a stale lock behind; the JSON inside only serves to name the holder in the error.
Writes go to a temporary file in the same directory, are fsynced, then renamed over the old file,
so a reader sees the old state or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from codebolt_topo.errors import LockError, StateError
from codebolt_topo.model.state import STATE_VERSION, State

__all__ = ["StateFile", "atomic_write", "state_dir_for"]


def state_dir_for(topology_path: Path) -> Path:
    """The ``.codebolt`` directory beside a topology file."""
    return topology_path.resolve().parent / ".codebolt"


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateFile:
    """One topology's state file and its lock."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.path = directory / f"{name}.state.json"
        self.lock_path = directory / f"{name}.lock"
        self.runtime_dir = directory / name
        self._lock_fd: int | None = None
        self.lock_id: str | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> State:
        """The current state; a fresh empty one when there is no file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State(topology=self.name)
        try:
            state = State.model_validate_json(raw)
        except ValidationError as error:
            raise StateError(
                f"{self.path}: not a valid state file: {error.errors()[0]['msg']}"
            ) from None
        if state.version != STATE_VERSION:
            raise StateError(f"{self.path}: state version {state.version} is not supported")
        if state.topology != self.name:
            raise StateError(
                f"{self.path}: belongs to topology {state.topology!r}, not {self.name!r}"
            )
        return state

    def save(self, state: State) -> None:
        """Write ``state`` atomically, bumping its serial. Must hold the lock."""
        if self._lock_fd is None:
            raise StateError("internal: state written without holding the lock")
        if not self._still_ours(self._lock_fd):
            raise LockError(
                f"the lock on {self.path} was force-unlocked (our lock id {self.lock_id}); "
                "refusing to write so that two runs never write the same state"
            )
        state.serial += 1
        atomic_write(self.path, state.model_dump_json(indent=2).encode() + b"\n")

    @contextlib.contextmanager
    def locked(self, operation: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the exclusive lock; fail at once (or after ``timeout`` s) naming the holder."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        deadline = time.monotonic() + timeout
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise LockError(f"state {self.path} is locked by {holder}") from None
                os.close(fd)
                time.sleep(0.05)
                continue
            if self._still_ours(fd):
                break
            os.close(fd)  # force-unlock replaced the file between our open and flock: again
        self.lock_id = uuid.uuid4().hex
        info = {
            "id": self.lock_id,
            "operation": operation,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._lock_fd = fd
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            self._lock_fd = None
            self.lock_id = None
            os.close(fd)  # closing the descriptor releases the flock

    def _still_ours(self, fd: int) -> bool:
        """Whether the lock path still names the file we hold (force-unlock unlinks it)."""
        try:
            return os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def force_unlock(self, lock_id: str) -> str:
        """Break the lock held under ``lock_id`` (the exact id, as the lock error showed it).

        The holder keeps its flock on the old file but can no longer write: :meth:`save`
        checks that the lock path still names its file. Returns who held it.
        """
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except FileNotFoundError:
            raise StateError(f"state {self.path} is not locked") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                raise StateError(f"state {self.path} is not locked")
            info = self._info(fd)
            if info.get("id") != lock_id:
                raise LockError(
                    f"lock id {lock_id!r} does not match: state {self.path} is locked by "
                    f"{self._holder(fd)}"
                )
            holder = self._holder(fd)
            os.unlink(self.lock_path)
            return holder
        finally:
            os.close(fd)

    @staticmethod
    def _info(fd: int) -> dict[str, object]:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def push(self, incoming: State) -> None:
        """Replace the state with ``incoming`` (a backup, a copy from another machine).

        Refused when it belongs to another lineage (another instance of the topology) or is
        not newer than what is here: an old copy must never roll back live nodes.
        """
        current = self.load()
        if incoming.topology != self.name:
            raise StateError(f"state belongs to topology {incoming.topology!r}, not {self.name!r}")
        if self.exists() and incoming.lineage != current.lineage:
            raise StateError(
                f"state lineage {incoming.lineage} differs from {current.lineage}: it describes "
                "another instance of this topology"
            )
        if self.exists() and incoming.serial <= current.serial:
            raise StateError(
                f"state serial {incoming.serial} is not newer than the current {current.serial}"
            )
        incoming.serial -= 1  # save() bumps it back to the serial pushed
        self.save(incoming)

    @classmethod
    def _holder(cls, fd: int, settle: float = 1.0) -> str:
        """Who holds the lock. The holder writes its details just after taking the flock,
        so an empty file is given ``settle`` seconds to fill before we say "another run"."""
        info = cls._info(fd)
        deadline = time.monotonic() + settle
        while not info and time.monotonic() < deadline:
            time.sleep(0.02)
            info = cls._info(fd)
        if not info:
            return "another run"
        return (
            f"{info.get('operation', 'a run')} (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('since')}, lock id {info.get('id')})"
        )
