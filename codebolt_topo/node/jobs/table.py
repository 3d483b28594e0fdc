"""The executing node's jobs by request id: idempotency, leases and retention.

A request id that reaches this node twice runs once: :meth:`JobTable.open` returns the job it
already holds (the caller then gets a second subscription, replayed from the offsets it asks
for). A job nobody is attached to keeps running for ``detach_lease`` seconds, then is killed;
a finished job nobody is attached to is kept ``retention`` seconds (its tail and exit), then
forgotten. Both clocks stop while someone is attached.

Each job counts, while its process runs, in the node's
:class:`~codebolt_topo.node.security.limits.Usage` (``usage``) and in that of the connection that
started it (see ``node/security/limits.py``). A job that cannot start, for whatever reason, leaves
the table at once and its request is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codebolt_topo.errors import ExecError
from codebolt_topo.node.jobs.executor import LocalJob
from codebolt_topo.node.jobs.held import HeldJob, Subscription
from codebolt_topo.node.security.limits import Charge, Usage

if TYPE_CHECKING:
    from codebolt_topo.wire.config import RuntimeConfig

__all__ = ["JobTable"]

log = logging.getLogger(__name__)


class JobTable:
    """Every job this node holds, keyed by the request's original id."""

    def __init__(
        self,
        node: str,
        runtime: Callable[[], RuntimeConfig],
        on_started: Callable[[HeldJob], None],
        on_ended: Callable[[HeldJob], None],
    ) -> None:
        self.node = node
        self._runtime = runtime
        self._on_started = on_started
        self._on_ended = on_ended
        self._jobs: dict[str, HeldJob] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.usage = Usage()
        """Jobs running here and the pipes they hold."""

    def get(self, key: str) -> HeldJob | None:
        """The job held for request ``key``, if any."""
        return self._jobs.get(key)

    def open(
        self,
        key: str,
        digest: str | None,
        make: Callable[[HeldJob], LocalJob],
        *,
        pipes: int = 3,
        connection: Usage | None = None,
    ) -> HeldJob:
        """The job for ``key``: the one held, or a new one being spawned (await ``ready``).

        A new job counts as one job holding ``pipes`` pipes, here and for the ``connection``
        that started it, until its process ended."""
        held = self._jobs.get(key)
        if held is None:
            held = HeldJob(key, digest, self.node, self._runtime().window, make)
            self._jobs[key] = held
            scopes = (self.usage,) if connection is None else (self.usage, connection)
            self._spawn(self._run(held, Charge(pipes, *scopes)))
        return held

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, held: HeldJob, charge: Charge) -> None:
        try:
            try:
                held.pid = await held.local.start()
            except Exception as exc:
                self._jobs.pop(held.key, None)
                held.ready.set_exception(self._start_error(held, exc))
                held.ready.exception()  # retrieved: its caller may be gone, that is no error
                return
            held.ready.set_result(held.pid)
            self._on_started(held)
            if not held.subs:
                self._arm(held)
            held.finished(await held.local.run())
        finally:
            charge.release()
        self._on_ended(held)
        if not held.subs:
            self._arm(held)

    def _start_error(self, held: HeldJob, exc: Exception) -> ExecError:
        """What the request is answered when its job could not start. The executor turns what
        it expects into ExecError; anything else is a bug, logged, and still answered."""
        if isinstance(exc, ExecError):
            return exc
        log.error("job %s on %s could not start", held.key, self.node, exc_info=exc)
        return ExecError(
            f"node {self.node!r}: request {held.key!r} could not start: {exc}",
            node=self.node,
            hop=self.node,
            code="internal",
        )

    def attach(self, held: HeldJob, sub: Subscription, stdout: int, stderr: int) -> None:
        """Attach ``sub`` (see :meth:`HeldJob.attach`) and stop the job's clock."""
        held.attach(sub, stdout, stderr)
        timer = self._timers.pop(held.key, None)
        if timer is not None:
            timer.cancel()

    def detach(self, held: HeldJob, sub: Subscription) -> None:
        """``sub`` left; the job's clock starts when it was the last one."""
        held.detach(sub)
        if not held.subs and self._jobs.get(held.key) is held:
            self._arm(held)

    def _arm(self, held: HeldJob) -> None:
        old = self._timers.pop(held.key, None)
        if old is not None:
            old.cancel()
        runtime = self._runtime()
        delay = runtime.retention if held.exit is not None else runtime.detach_lease
        self._timers[held.key] = asyncio.get_running_loop().call_later(delay, self._expire, held)

    def _expire(self, held: HeldJob) -> None:
        self._timers.pop(held.key, None)
        if held.subs or self._jobs.get(held.key) is not held:
            return
        if held.exit is None:
            log.info(
                "job %s on %s: detached longer than its lease, killing it", held.key, self.node
            )
            held.cancel()  # its exit re-arms the clock for retention
        else:
            del self._jobs[held.key]

    def running(self) -> int:
        """Jobs whose process has not ended."""
        return sum(1 for job in self._jobs.values() if job.exit is None)

    def summary(self) -> dict[str, int]:
        """Counts per state and bytes buffered (cheap enough for every heartbeat)."""
        counts = {"running": 0, "detached": 0, "finished": 0, "buffered": 0}
        for job in self._jobs.values():
            counts[job.state] += 1
            counts["buffered"] += job.buffered
        return counts

    def describe(self) -> list[dict[str, Any]]:
        """Every held job, for operators (``info`` with ``detail: true``)."""
        return [job.describe() for job in self._jobs.values()]

    def cancel_all(self) -> None:
        """Kill every running job (the node is stopping)."""
        for job in self._jobs.values():
            if job.exit is None and job.ready.done():
                job.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for every job's process to end; then stop the clocks."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
