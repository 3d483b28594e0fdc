"""The state file on disk: atomic writes, 0600, one writer at a time.

Layout beside the topology file::

    .codebolt/<name>.state.json   the state (tokens inside: mode 0600)
    .codebolt/<name>.lock         the lock (flock; its content names the holder)
    .codebolt/<name>/             per-node runtime files (launch configs, logs, workspaces)
    .codebolt/.gitignore          "*": git never stages any of it (written with the directory)

Why flock: the kernel releases it when the holder dies, even by SIGKILL, so a crashed run never
leaves a stale lock behind; the JSON inside only serves to name the holder in the error.
Writes go to a temporary file in the same directory, are fsynced, then renamed over the old file,
so a reader sees the old state or the new one, never a torn one.

:class:`StateBackend` is what the engine asks of any place a state lives (this file, or the
PostgreSQL backend of :mod:`codebolt_topo.engine.backends.postgres`): load, save under a lock
that names its holder and dies with it, lineage and serial checks, and the lease a standing
``watch`` leads under (:mod:`codebolt_topo.engine.lease`). Tokens are sealed with the operator's
key on the way in and opened on the way out (:mod:`codebolt_topo.engine.statekey`), so what is
stored, here or in a database, never holds a usable token.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from codebolt_topo.engine.statekey import Keyring
from codebolt_topo.errors import LockError, StateError
from codebolt_topo.model.state import STATE_VERSION, State

if TYPE_CHECKING:
    from codebolt_topo.engine.lease import Lease, LeaseStore

__all__ = [
    "GITIGNORE",
    "BackendUnavailableError",
    "StateBackend",
    "StateFile",
    "StateVersion",
    "atomic_write",
    "check_push",
    "describe_holder",
    "ensure_state_dir",
    "holder_info",
    "parse_state",
    "render_state",
    "state_dir_for",
    "who_am_i",
]

GITIGNORE = "# Written by codebolt: state, tokens and node runtime files stay out of git.\n*\n"


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


def ensure_state_dir(directory: Path) -> None:
    """Create ``.codebolt/`` (0700) with its ``.gitignore``: git never stages any of it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text(GITIGNORE)


class BackendUnavailableError(StateError):
    """The place the state lives cannot be reached (a database down): nothing was written."""


@dataclass(frozen=True, slots=True)
class StateVersion:
    """One stored version of a state (the backends that keep history list them)."""

    serial: int
    lineage: str
    written_at: str
    written_by: str
    nodes: int


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def who_am_i() -> str:
    """``user@host pid N``: who wrote a state version."""
    return f"{_user()}@{socket.gethostname()} pid {os.getpid()}"


def holder_info(operation: str, lock_id: str) -> dict[str, Any]:
    """What a lock records about its holder, so that a refused run can name it."""
    return {
        "id": lock_id,
        "operation": operation,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": _user(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe_holder(info: dict[str, Any]) -> str:
    return (
        f"{info.get('operation', 'a run')} (pid {info.get('pid')} on {info.get('host')}, "
        f"since {info.get('since')}, lock id {info.get('id')})"
    )


def check_push(name: str, current: State, exists: bool, incoming: State) -> None:
    """Refuse a pushed state of another topology or lineage, or one that is not newer: an old
    copy must never roll back live nodes."""
    if incoming.topology != name:
        raise StateError(f"state belongs to topology {incoming.topology!r}, not {name!r}")
    if exists and incoming.lineage != current.lineage:
        raise StateError(
            f"state lineage {incoming.lineage} differs from {current.lineage}: it describes "
            "another instance of this topology"
        )
    if exists and incoming.serial <= current.serial:
        raise StateError(
            f"state serial {incoming.serial} is not newer than the current {current.serial}"
        )


def parse_state(raw: bytes, keyring: Keyring, *, where: str, name: str, sealed_ok: bool) -> State:
    """A stored state document back into a :class:`State`, its tokens opened (see
    :meth:`Keyring.open_document`); refused when damaged, of another version or topology."""
    try:
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        state = State.model_validate(keyring.open_document(document, sealed_ok=sealed_ok))
    except ValueError as error:
        message = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise StateError(f"{where}: not a valid state file: {message}") from None
    if state.version != STATE_VERSION:
        raise StateError(f"{where}: state version {state.version} is not supported")
    if state.topology != name:
        raise StateError(f"{where}: belongs to topology {state.topology!r}, not {name!r}")
    return state


def render_state(state: State, keyring: Keyring) -> bytes:
    """``state`` as stored: JSON with every token sealed."""
    document = keyring.seal_document(state.model_dump(mode="json"))
    return json.dumps(document, indent=2).encode() + b"\n"


class StateBackend(ABC):
    """Where one topology's state lives, and its lock. The engine reads and writes the state
    through this interface only; node runtime files (logs, workspaces, launch configs) stay in
    ``runtime_dir`` on this machine whatever the backend.

    Contract: :meth:`load` never needs the lock; :meth:`save` needs it, bumps the serial and is
    atomic (a reader sees the old state or the new one); the lock names its holder and is
    released when its holder dies; a lock broken by :meth:`force_unlock` stops its old holder
    from writing. A lease set with :meth:`fence` makes every save also check that lease, so a
    ``watch`` that lost its leadership can no longer write.
    """

    directory: Path
    name: str
    keyring: Keyring
    lock_id: str | None

    def __init__(self, directory: Path, name: str, keyring: Keyring | None = None) -> None:
        self.directory = directory
        self.name = name
        self.runtime_dir = directory / name
        self.keyring = keyring or Keyring.discover(directory / f"{name}.key")
        self.lock_id = None
        self._fence: Lease | None = None
        #: Set once the backend could not be reached: what every later write fails with.
        self.unavailable: BackendUnavailableError | None = None

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the state is, for messages (a path, or the database and schema)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether a state was ever written."""

    @abstractmethod
    def load(self, *, sealed_ok: bool = False) -> State:
        """The current state (a fresh one when none was written). Tokens are opened with the
        keyring; when it lacks their key, :class:`~codebolt_topo.engine.statekey.MissingKeyError`
        unless ``sealed_ok`` (then they stay sealed: enough to plan, never to act)."""

    @abstractmethod
    def save(self, state: State) -> None:
        """Write ``state``, bumping its serial. Must hold the lock."""

    @abstractmethod
    def locked(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[None]:
        """Hold the exclusive lock; fail at once (or after ``timeout`` s) naming the holder."""

    @abstractmethod
    def force_unlock(self, lock_id: str) -> str:
        """Break the lock held under ``lock_id``; returns who held it."""

    @abstractmethod
    def push(self, incoming: State) -> None:
        """Replace the state with ``incoming`` (under the lock); see :func:`check_push`."""

    @abstractmethod
    def versions(self) -> list[StateVersion]:
        """Every kept version, oldest first."""

    @abstractmethod
    def load_version(self, serial: int, *, sealed_ok: bool = False) -> State:
        """The version of the current lineage written at ``serial``."""

    @abstractmethod
    def reseal(self, keyring: Keyring) -> int:
        """Seal every stored token again with ``keyring``'s key (under the lock): key
        rotation. Returns how many stored documents were rewritten."""

    @abstractmethod
    def leases(self) -> LeaseStore:
        """Where a standing ``watch`` takes its leadership lease."""

    @abstractmethod
    def fingerprint(self) -> object:
        """Something that changes whenever the state does (the exec broker's cache key)."""

    def fence(self, lease: Lease | None) -> None:
        """Make every later :meth:`save` check that ``lease`` is still held (None: stop)."""
        self._fence = lease

    def close(self) -> None:  # noqa: B027 (most backends hold nothing open)
        """Release connections this backend holds."""


class StateFile(StateBackend):
    """One topology's state file and its lock: the default backend."""

    def __init__(self, directory: Path, name: str, keyring: Keyring | None = None) -> None:
        super().__init__(directory, name, keyring)
        self.path = directory / f"{name}.state.json"
        self.lock_path = directory / f"{name}.lock"
        self._lock_fd: int | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self, *, sealed_ok: bool = False) -> State:
        """The current state; a fresh empty one when there is no file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._refuse_if_migrated()
            return State(topology=self.name)
        return parse_state(
            raw, self.keyring, where=str(self.path), name=self.name, sealed_ok=sealed_ok
        )

    def _refuse_if_migrated(self) -> None:
        """A state moved to another backend (``state migrate``) leaves its file renamed: a
        command still pointed here must not take "no state" for "nothing runs"."""
        moved = sorted(self.directory.glob(f"{self.path.name}.migrated-*"))
        if moved:
            raise StateError(
                f"the state of {self.name!r} was migrated to another backend ({moved[-1]} is "
                "the file copy left behind): set the backend: block of the topology file (or "
                "--backend) to where it went"
            )

    def save(self, state: State) -> None:
        """Write ``state`` atomically, bumping its serial. Must hold the lock."""
        if self._lock_fd is None:
            raise StateError("internal: state written without holding the lock")
        if not self._still_ours(self._lock_fd):
            raise LockError(
                f"the lock on {self.path} was force-unlocked (our lock id {self.lock_id}); "
                "refusing to write so that two runs never write the same state"
            )
        if self._fence is not None:
            self.leases().check(self._fence)
        data = render_state(state.model_copy(update={"serial": state.serial + 1}), self.keyring)
        atomic_write(self.path, data)
        state.serial += 1

    def fingerprint(self) -> object:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def leases(self) -> LeaseStore:
        from codebolt_topo.engine.lease import FileLeaseStore

        return FileLeaseStore(self.directory / f"{self.name}.lease")

    def versions(self) -> list[StateVersion]:
        raise StateError(
            f"{self.path}: the file backend keeps only the current state; the postgres "
            "backend keeps every version (backend: {type: postgres})"
        )

    def load_version(self, serial: int, *, sealed_ok: bool = False) -> State:
        current = self.load(sealed_ok=sealed_ok)
        if self.exists() and serial == current.serial:
            return current
        self.versions()
        raise AssertionError("unreachable")

    def reseal(self, keyring: Keyring) -> int:
        if self._lock_fd is None:
            raise StateError("internal: state resealed without holding the lock")
        if not self.exists():
            return 0
        state = self.load()
        atomic_write(self.path, render_state(state, keyring))
        self.keyring = keyring
        return 1

    @contextlib.contextmanager
    def locked(self, operation: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the exclusive lock; fail at once (or after ``timeout`` s) naming the holder."""
        ensure_state_dir(self.directory)
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
        info = holder_info(operation, self.lock_id)
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
        exists = self.exists()
        current = self.load(sealed_ok=True) if exists else State(topology=self.name)
        check_push(self.name, current, exists, incoming)
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
        return describe_holder(info)
