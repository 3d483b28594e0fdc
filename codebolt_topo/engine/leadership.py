"""Which of several ``watch`` processes on one shared state acts: the one holding the lease.

Why: a team runs a standing watcher (a service) next to the shared state, often two for
redundancy. Two watchers acting at once would replace the same dead node twice. So a watcher
acts only while it holds the topology's lease (:mod:`codebolt_topo.engine.lease`); the other
stands by and tries to take it every ``ttl / 4`` seconds.

Timing, with ``ttl`` the topology's heartbeat interval by default: the leader renews every
``ttl / 4``, so when it is killed its lease has at most ``ttl`` seconds left, and the standby's
next try comes at most ``ttl / 4`` after that: a takeover within ``1.25 * ttl``, inside the
promised two heartbeat intervals. A leader that fails to renew (paused, cut off from the
database) stops acting at once, and its writes are fenced by the lease's term in any case.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable

from codebolt_topo.engine.lease import Lease, LeaseStore
from codebolt_topo.errors import TopoError

__all__ = ["Leadership", "watcher_id"]


def watcher_id() -> str:
    """A name for this watcher that no other process shares (``host pid N/xxxx``)."""
    return f"{socket.gethostname()} pid {os.getpid()}/{uuid.uuid4().hex[:6]}"


class Leadership:
    """Holds or waits for the lease of one topology's watch."""

    def __init__(
        self,
        store: LeaseStore,
        ttl: float,
        *,
        holder: str | None = None,
        report: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.holder = holder or watcher_id()
        self.report = report
        self.lease: Lease | None = None
        self._announced_standby = False

    @property
    def interval(self) -> float:
        """Seconds between two :meth:`step` calls."""
        return self.ttl / 4

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def step(self) -> bool:
        """Renew the lease, or try to take it; whether this watcher leads now. A backend that
        cannot be reached counts as a lost lease: acting blind is what fencing prevents."""
        try:
            if self.lease is not None:
                if self.store.renew(self.lease):
                    return True
                self.report(f"lost the watch lease (term {self.lease.term}): standing by")
                self.lease = None
            taken = self.store.acquire(self.holder, self.ttl)
        except TopoError as error:
            if self.lease is not None:
                self.report(f"cannot renew the watch lease ({error}): standing by")
            self.lease = None
            return False
        if taken is not None:
            self.lease = taken
            self._announced_standby = False
            self.report(f"leading the watch (lease term {taken.term}, {self.holder})")
            return True
        if not self._announced_standby:
            current = self.store.current()
            who = f"{current.holder}, term {current.term}" if current else "another watcher"
            self.report(f"standing by: the watch is led by {who}")
            self._announced_standby = True
        return False

    def release(self) -> None:
        """Give the lease up when stopping, so a standby takes over without waiting."""
        if self.lease is not None:
            with contextlib.suppress(TopoError):  # otherwise it expires by itself
                self.store.release(self.lease)
            self.lease = None
