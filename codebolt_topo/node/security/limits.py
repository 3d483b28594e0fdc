"""What a request, a connection and the node may take, and the refusals past that (issue 12).

One edge token used to be enough to exhaust a node: every malformed request leaked three pipes
until the node ran out of descriptors. The daemon now counts, per node (:class:`Usage` of the
job table) and per inbound connection (one :class:`Usage` per session), the jobs running and the
pipes they hold, and refuses past :class:`~codebolt_topo.wire.config.Limits` with
``over-limit``. Before a spawn, :class:`DescriptorGauge` checks that the job's descriptors fit
below ``RLIMIT_NOFILE`` with the reserve left free, so new handshakes still find a descriptor.

The checks cost a few additions per request: the exact descriptor count (a ``/proc`` listing,
0.2 ms at 200 descriptors, 4 ms at 3,000) is taken only near the limit and every
:data:`RECOUNT_EVERY` spawns, never on the common path.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable
from typing import Any, Final

from codebolt_topo.wire.config import Limits

__all__ = [
    "RECOUNT_EVERY",
    "Charge",
    "DescriptorGauge",
    "Usage",
    "descriptor_limit",
    "job_over_limit",
    "open_descriptors",
    "pipes_of",
    "raise_descriptor_limit",
    "request_over_limit",
]

RECOUNT_EVERY: Final = 256
"""Spawns between two exact descriptor counts (between them, the count is estimated)."""
_SOFT_CEILING: Final = 65536
"""Highest soft RLIMIT_NOFILE :func:`raise_descriptor_limit` asks for: jobs inherit it, and
some programs still close every descriptor up to it one by one."""


class Usage:
    """Jobs running and the pipes they hold, for one scope: the node, or one connection."""

    __slots__ = ("jobs", "pipes")

    def __init__(self) -> None:
        self.jobs = 0
        self.pipes = 0

    @property
    def descriptors(self) -> int:
        """Descriptors these jobs hold here: one end of each pipe, and one pidfd per job."""
        return self.pipes + self.jobs


class Charge:
    """What one job took from each scope it counts in; :meth:`release` gives it back once."""

    __slots__ = ("_scopes", "pipes")

    def __init__(self, pipes: int, *scopes: Usage) -> None:
        self.pipes = pipes
        self._scopes = scopes
        for usage in scopes:
            usage.jobs += 1
            usage.pipes += pipes

    def release(self) -> None:
        """The job's process ended (or never started): its pipes are closed."""
        scopes, self._scopes = self._scopes, ()
        for usage in scopes:
            usage.jobs -= 1
            usage.pipes -= self.pipes


def pipes_of(request: dict[str, Any]) -> int:
    """Pipes a job of ``request`` holds: stdout, stderr, notifications, and stdin when asked."""
    return 4 if request.get("stdin") else 3


def request_over_limit(
    node: str, limits: Limits, request_id: str, targets: int, open_targets: int
) -> str | None:
    """Why a request naming ``targets`` targets may not enter through a connection that has
    ``open_targets`` open already; None when it may. One refusal answers the whole request:
    a list of 20,000 targets costs one error frame, not 20,000."""
    if targets > limits.targets:
        return (
            f"node {node!r}: request {request_id!r} names {targets} targets, over "
            f"limits.targets = {limits.targets}"
        )
    if open_targets + targets > limits.connection_targets:
        return (
            f"node {node!r}: request {request_id!r} would bring this connection to "
            f"{open_targets + targets} open targets, over limits.connection_targets = "
            f"{limits.connection_targets}"
        )
    return None


def job_over_limit(
    node: str, limits: Limits, pipes: int, here: Usage, connection: Usage
) -> str | None:
    """Why one more job holding ``pipes`` pipes may not start; None when it may."""
    for used, limit, name in (
        (here.jobs + 1, limits.jobs, "jobs"),
        (connection.jobs + 1, limits.connection_jobs, "connection_jobs"),
        (here.pipes + pipes, limits.pipes, "pipes"),
        (connection.pipes + pipes, limits.connection_pipes, "connection_pipes"),
    ):
        if used > limit:
            what = "pipes" if name.endswith("pipes") else "jobs"
            scope = "this connection" if name.startswith("connection") else "the node"
            return (
                f"node {node!r}: one more job would hold {used} {what} for {scope}, over "
                f"limits.{name} = {limit}"
            )
    return None


def open_descriptors() -> int:
    """Descriptors this process has open (exact; costs a directory listing)."""
    for listing in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(listing)) - 1  # the listing's own descriptor
    return 0


def descriptor_limit() -> int:
    """This process's soft ``RLIMIT_NOFILE``."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


def raise_descriptor_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards the hard one (at most 65,536) and return it.

    Call once at daemon start: the common soft default of 1,024 fits about 180 jobs; the hard
    limit is what an administrator meant to grant."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _SOFT_CEILING if hard == resource.RLIM_INFINITY else min(hard, _SOFT_CEILING)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return descriptor_limit()


class DescriptorGauge:
    """Whether a job's descriptors fit below ``RLIMIT_NOFILE`` minus the reserve.

    The count is estimated from the descriptors running jobs hold (tracked exactly) plus a base
    (everything else: sockets, logs, the event loop) taken from an exact count; the exact count
    is taken again only when the estimate says no, and every :data:`RECOUNT_EVERY` checks.
    """

    __slots__ = ("_base", "_checks", "_count", "_limit")

    def __init__(
        self,
        count: Callable[[], int] = open_descriptors,
        limit: Callable[[], int] = descriptor_limit,
    ) -> None:
        self._count = count
        self._limit = limit
        self._base: int | None = None
        self._checks = 0

    def refusal(self, node: str, need: int, reserve: int, held: int) -> str | None:
        """Why a job needing ``need`` descriptors at its spawn may not start, while running jobs
        hold ``held``; None when it fits."""
        limit = self._limit()
        self._checks += 1
        exact = self._base is None or self._checks % RECOUNT_EVERY == 0
        if exact:
            self._base = self._count() - held
        assert self._base is not None
        if self._base + held + need + reserve <= limit:
            return None
        if not exact:  # the estimate says no: count exactly, now that it decides
            self._base = self._count() - held
            if self._base + held + need + reserve <= limit:
                return None
        return (
            f"node {node!r}: {self._base + held} descriptors open and a job needs {need} more, "
            f"past RLIMIT_NOFILE = {limit} less limits.descriptor_reserve = {reserve}"
        )
