"""The leadership lease of a standing ``watch``: one leader per topology, fenced by a term.

Why a lease and not the state lock: the lock is held only while a run writes; a watcher must
be the only one *acting* for as long as it runs, and a second watcher on the same shared state
must take over when the first dies, without anyone breaking a lock by hand. So the leader holds
a lease that it renews; a lease not renewed within its ``ttl`` seconds has expired and anyone
may take it. Each taking increments the lease's ``term``: the leader's writes are fenced by it
(:meth:`~codebolt_topo.engine.statefile.StateBackend.fence`), so a leader that was paused past
its ttl (and replaced) finds, at its next write, that its term is over, and stops acting.
There are never two leaders writing.

:class:`FileLeaseStore` keeps the lease in a file beside the state (``<name>.lease``), changed
only under an ``flock`` of ``<name>.lease.lock``; the PostgreSQL backend keeps it in its
database, where expiry is judged by the server's clock
(:mod:`codebolt_topo.engine.backends.postgres`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.errors import StateError

__all__ = ["FileLeaseStore", "Lease", "LeaseInfo", "LeaseLostError", "LeaseStore"]


class LeaseLostError(StateError):
    """A watcher's lease was taken over: it must stop acting."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this process holds: who, which term, for how long each renewal lasts."""

    holder: str
    term: int
    ttl: float


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as anyone can read it (``remaining`` < 0: expired)."""

    holder: str
    term: int
    remaining: float


class LeaseStore(ABC):
    """Where a topology's leadership lease lives."""

    @abstractmethod
    def acquire(self, holder: str, ttl: float) -> Lease | None:
        """Take the lease when it is free or expired (a new term); None while another holds
        it. Taking it back while still holding it keeps the term."""

    @abstractmethod
    def renew(self, lease: Lease) -> bool:
        """Extend ``lease`` by its ttl; False when it expired or another term began."""

    @abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the lease up (a watcher stopping cleanly), so a standby need not wait."""

    @abstractmethod
    def current(self) -> LeaseInfo | None:
        """The lease as stored now, expired or not; None when never taken."""

    def check(self, lease: Lease) -> None:
        """Raise :class:`LeaseLostError` unless ``lease`` is still the live one."""
        now = self.current()
        if now is None or now.term != lease.term or now.holder != lease.holder:
            taken = f"term {now.term} of {now.holder}" if now else "nobody"
            raise LeaseLostError(
                f"watch lease term {lease.term} is over (now {taken}): not writing the state"
            )
        if now.remaining <= 0:
            raise LeaseLostError(f"watch lease term {lease.term} expired: not writing the state")


class FileLeaseStore(LeaseStore):
    """The lease as a JSON file beside the state; wall-clock expiry (one machine's clock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, object] | None:
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # damaged: treated as expired, the next taker rewrites it
        return document if isinstance(document, dict) else None

    def _write(self, holder: str, term: int, expires: float) -> None:
        from codebolt_topo.engine.statefile import atomic_write

        document = {"holder": holder, "term": term, "expires": expires}
        atomic_write(self.path, json.dumps(document).encode())

    def acquire(self, holder: str, ttl: float) -> Lease | None:
        with self._locked():
            now = time.time()
            stored = self._read()
            term = int(str(stored.get("term", 0))) if stored else 0
            if stored and float(str(stored.get("expires", 0))) > now:
                if stored.get("holder") != holder:
                    return None
                self._write(holder, term, now + ttl)
                return Lease(holder, term, ttl)
            self._write(holder, term + 1, now + ttl)
            return Lease(holder, term + 1, ttl)

    def renew(self, lease: Lease) -> bool:
        with self._locked():
            now = time.time()
            stored = self._read()
            if (
                stored is None
                or stored.get("holder") != lease.holder
                or stored.get("term") != lease.term
                or float(str(stored.get("expires", 0))) <= now
            ):
                return False
            self._write(lease.holder, lease.term, now + lease.ttl)
            return True

    def release(self, lease: Lease) -> None:
        with self._locked():
            stored = self._read()
            if stored and stored.get("holder") == lease.holder and stored.get("term") == lease.term:
                self._write(lease.holder, lease.term, 0.0)

    def current(self) -> LeaseInfo | None:
        stored = self._read()
        if stored is None:
            return None
        return LeaseInfo(
            holder=str(stored.get("holder")),
            term=int(str(stored.get("term", 0))),
            remaining=float(str(stored.get("expires", 0))) - time.time(),
        )
