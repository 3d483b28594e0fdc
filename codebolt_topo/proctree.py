"""Processes below this one, as ``/proc`` shows them: children, session, start time.

Linux only (elsewhere every reader returns nothing and :func:`become_subreaper` says False).
A pid alone names a process only while it lives: :class:`ProcStat` carries the start time
(clock ticks since boot) so that a recycled pid is never mistaken for the process it replaced.

Children that this process starts detached (a child topology's daemons, tunnels) are
:func:`claim_child`-ed: a node daemon that is a *child subreaper* also receives every orphan of
its jobs, and must tell the two apart (see :mod:`codebolt_topo.node.jobs.reaper`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ProcStat",
    "become_subreaper",
    "children",
    "claim_child",
    "is_claimed",
    "read_stat",
    "subtree",
]

_PR_SET_CHILD_SUBREAPER = 36
_claimed: dict[int, int] = {}
"""pid -> start time of the children this process started on purpose (not jobs' orphans)."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` that process bookkeeping needs."""

    pid: int
    state: str
    """R, S, D, T, Z (zombie: exited, not yet collected by its parent), X..."""
    ppid: int
    pgrp: int
    session: int
    start: int
    """Start time in clock ticks since boot: (pid, start) names one process for good."""

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def read_stat(pid: int) -> ProcStat | None:
    """``pid``'s stat, or None when there is no such process (or it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start=int(fields[19]),
    )


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (of every thread: a child belongs to the thread that forked
    it, and an orphan to whichever thread of its new parent took it in)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children", "rb") as file:
            found.extend(int(child) for child in file.read().split())
    return found


def subtree(roots: Iterable[int]) -> list[int]:
    """``roots`` and every process below them, parents before children."""
    order: list[int] = []
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        order.append(pid)
        pending.extend(children(pid))
    return order


def become_subreaper() -> bool:
    """Make this process the *child subreaper* of everything below it: an orphaned descendant is
    re-parented here instead of to init, so no process a job starts can leave our subtree (a
    double fork included). False where the kernel has no such thing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def claim_child(pid: int) -> None:
    """Record that this process started ``pid`` on purpose and will collect it itself."""
    stat = read_stat(pid)
    if stat is not None:
        _claimed[pid] = stat.start


def is_claimed(stat: ProcStat) -> bool:
    """Whether ``stat`` is a child this process claimed (same pid *and* start time)."""
    return _claimed.get(stat.pid) == stat.start
