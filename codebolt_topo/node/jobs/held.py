"""Jobs held by the executing node: they outlive the connection that started them.

A :class:`HeldJob` owns one :class:`~codebolt_topo.node.jobs.executor.LocalJob` and its replay
buffers. Callers see it through :class:`Subscription` objects (one per session channel): any
number may be attached (a duplicated request id gets a second one), none at all while every
caller is away (the job is *detached* and keeps running). Each subscription sends, in order,
what it has not sent yet, then ``exit`` once; acks from its caller trim the buffers.

The producer waits while a stream holds a full window that no caller acknowledged: the child is
paused through its pipe, per job, so a slow reader never stalls other jobs on shared links and
memory stays bounded by the window. :class:`~codebolt_topo.node.jobs.table.JobTable` keeps jobs by
request id and expires them (lease while detached, retention once finished).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from codebolt_topo.errors import ExecError
from codebolt_topo.node.jobs.executor import LocalJob
from codebolt_topo.wire.codec import encode
from codebolt_topo.wire.flow import ReplayBuffer
from codebolt_topo.wire.frames import HEADER_SIZE, STDERR, STDOUT, pack_data

__all__ = ["HeldJob", "Subscription"]

_DETACHED_NOTES = 256
_COMMAND_SHOWN = 200
"""Characters of a job's command in ``info`` (a shell script may be long; a heartbeat is not)."""
Send = Callable[[str | bytes], Awaitable[None]]


class Subscription:
    """One caller's view of a held job, on channel ``ch`` of one session."""

    __slots__ = ("acked", "ch", "closed", "job", "notes", "sent", "wake")

    def __init__(self, job: HeldJob) -> None:
        self.job = job
        self.ch = 0
        self.sent = [0, 0, 0]
        self.acked = [0, 0, 0]
        self.notes: deque[tuple[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """Stop sending (the caller went away); :meth:`pump` returns False."""
        self.closed = True
        self.wake.set()

    def ack(self, stdout: int, stderr: int) -> None:
        """The caller consumed up to these offsets (ProtocolError beyond what was produced)."""
        for stream, offset in ((STDOUT, stdout), (STDERR, stderr)):
            self.acked[stream] = max(self.acked[stream], min(offset, self.sent[stream]))
        self.job.trim()

    async def pump(self, send: Send) -> dict[str, Any] | None:
        """Send output and notifications until the job has exited and all of it went out; then
        return the ``exit`` message for the caller to send (it may carry the request's
        ``done``). None when the subscription was closed first."""
        job, ch, sent = self.job, self.ch, self.sent
        buffers = job.buffers
        while not self.closed:
            self.wake.clear()
            while self.notes and not self.closed:
                kind, data = self.notes.popleft()
                await send(
                    encode({"t": "notify", "ch": ch, "node": job.node, "kind": kind, "data": data})
                )
            progress = True
            while progress and not self.closed:
                progress = False
                for stream in (STDOUT, STDERR):
                    buffer = buffers[stream]
                    offset = sent[stream]
                    if offset < buffer.end:
                        pieces = buffer.pieces(offset)
                        frame = pack_data(stream, ch, offset, *pieces)
                        sent[stream] = offset + len(frame) - HEADER_SIZE
                        await send(frame)
                        progress = True
            if self.closed:
                break
            if (
                job.exit is not None
                and not self.notes
                and sent[STDOUT] == buffers[STDOUT].end
                and sent[STDERR] == buffers[STDERR].end
            ):
                return {**job.exit, "ch": ch}
            await self.wake.wait()
        return None


class HeldJob:
    """A local job, its buffered output, its subscriptions, and its exit once it ended."""

    def __init__(
        self,
        key: str,
        digest: str | None,
        node: str,
        window: int,
        job: Callable[[HeldJob], LocalJob],
    ) -> None:
        self.key = key
        self.digest = digest
        self.node = node
        self.window = window
        self.local = job(self)
        self.buffers = (ReplayBuffer(), ReplayBuffer(), ReplayBuffer())
        self.subs: list[Subscription] = []
        self.joining = 0
        """Callers waiting for the process to start before they attach (``Session``): a job
        being spawned for its caller is not a job nobody follows."""
        self.exit: dict[str, Any] | None = None
        self.pid: int | None = None
        self.created = time.monotonic()
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._room = asyncio.Event()
        self._released = False
        self._waiting = False
        self._notes: deque[tuple[str, Any]] = deque(maxlen=_DETACHED_NOTES)

    @property
    def state(self) -> str:
        """``running`` (someone attached, or about to), ``detached`` (running, nobody
        attached) or ``finished``."""
        if self.exit is not None:
            return "finished"
        return "running" if self.subs or self.joining else "detached"

    @property
    def buffered(self) -> int:
        """Bytes held for callers, both streams."""
        return self.buffers[STDOUT].held + self.buffers[STDERR].held

    # Sink ----------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._waiting

    async def output(self, stream: int, data: bytes) -> None:
        buffer = self.buffers[stream]
        buffer.append(data)
        for sub in self.subs:
            sub.wake.set()
        while buffer.held >= self.window and not self._released:
            self._room.clear()
            self._waiting = True
            try:
                await self._room.wait()
            finally:
                self._waiting = False

    def notify(self, kind: str, data: Any) -> None:
        if not self.subs:
            self._notes.append((kind, data))
        for sub in self.subs:
            sub.notes.append((kind, data))
            sub.wake.set()

    def release(self) -> None:
        self._released = True
        self._room.set()

    # Callers -------------------------------------------------------------------------------
    def attach(self, sub: Subscription, stdout: int, stderr: int) -> None:
        """Start ``sub`` at these offsets (what its caller already has, acknowledged too).

        Raises ExecError code ``truncated`` when the bytes asked for are no longer held.
        """
        for stream, offset in ((STDOUT, stdout), (STDERR, stderr)):
            buffer = self.buffers[stream]
            if not buffer.base <= offset <= buffer.end:
                name = "stdout" if stream == STDOUT else "stderr"
                raise ExecError(
                    f"node {self.node!r} no longer holds {name} of request {self.key!r} from "
                    f"offset {offset} (holds {buffer.base}..{buffer.end}; asked stdout {stdout},"
                    f" stderr {stderr})",
                    node=self.node,
                    hop=self.node,
                    code="truncated",
                )
        sub.sent = [0, stdout, stderr]
        sub.acked = [0, stdout, stderr]
        sub.notes.extend(self._notes)
        self._notes.clear()
        self.subs.append(sub)
        self.trim()

    def detach(self, sub: Subscription) -> None:
        """``sub`` is gone (its exit was sent, or its caller went away)."""
        if sub in self.subs:
            self.subs.remove(sub)

    def trim(self) -> None:
        """Drop what every attached caller acknowledged, and let the producer go on."""
        if not self.subs:
            return
        for stream in (STDOUT, STDERR):
            self.buffers[stream].trim(min(sub.acked[stream] for sub in self.subs))
        self._room.set()

    def cancel(self) -> None:
        """Kill the job (cancel, lease expiry, node stopping)."""
        self.local.cancel()

    def finished(self, exit_message: dict[str, Any]) -> None:
        """Record the exit and let every subscription send it after its last output."""
        self.exit = exit_message
        for sub in self.subs:
            sub.wake.set()

    def describe(self) -> dict[str, Any]:
        """This job in ``info`` (``detail: true``)."""
        command = self.local.command
        return {
            "id": self.key,
            "state": self.state,
            "pid": self.pid,
            "command": command
            if len(command) <= _COMMAND_SHOWN
            else command[: _COMMAND_SHOWN - 3] + "...",
            "owner": self.local.owner,
            "stdout": self.buffers[STDOUT].end,
            "stderr": self.buffers[STDERR].end,
            "buffered": self.buffered,
            "attached": len(self.subs),
            "paused": self._waiting,
            "age": round(time.monotonic() - self.created, 3),
        }
