"""One request as the caller follows it: :class:`ExecHandle` turns the frames of its wire ids
into events, checks every chunk's offset, acknowledges what the application consumed, and
repairs a dropped connection or lost link by resuming each open job from its offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from codebolt_topo.client.events import (
    Event,
    ExecResult,
    Exit,
    Failed,
    NodeResult,
    Notification,
    Output,
    Started,
)
from codebolt_topo.errors import ExecError, ProtocolError, TopoError
from codebolt_topo.wire.codec import encode
from codebolt_topo.wire.flow import AckPolicy
from codebolt_topo.wire.frames import CHUNK_SIZE, STDERR, STDIN, STDOUT, pack_data, unpack_data
from codebolt_topo.wire.link import Link
from codebolt_topo.wire.tracking import JobStream

if TYPE_CHECKING:
    from codebolt_topo.client.connection import NodeClient

__all__ = ["ExecHandle", "Stdin", "TargetProgress"]

Stdin = bytes | AsyncIterable[bytes]
"""A job's stdin: all of it at once, or a stream sent as it comes (a bundle piped through)."""


_NAMES: tuple[Literal["stdout", "stderr"], ...] = ("stdout", "stdout", "stderr")


async def _pieces(data: Stdin) -> AsyncIterator[bytes]:
    if isinstance(data, bytes):
        yield data
    else:
        async for piece in data:
            yield piece


class TargetProgress:
    """What the handle knows of one target: received offsets, consumption, resume attempts."""

    __slots__ = ("ack", "attempts", "open", "started", "stream")

    def __init__(self, node: str, stdout: int = 0, stderr: int = 0) -> None:
        self.stream = JobStream(node)
        self.stream.offsets = [0, stdout, stderr]
        self.ack = AckPolicy(None)
        self.ack.consumed = [0, stdout, stderr]
        self.ack.acked = [0, stdout, stderr]
        self.started = False
        self.open = True
        self.attempts = 0

    def resume_point(self) -> dict[str, int]:
        return {"stdout": self.stream.offsets[STDOUT], "stderr": self.stream.offsets[STDERR]}


class _Wire:
    """Link handler for one wire id of a handle (a resume or attach sends a new one)."""

    __slots__ = ("handle", "id")

    def __init__(self, handle: ExecHandle, wire_id: str) -> None:
        self.handle = handle
        self.id = wire_id

    async def on_control(self, message: dict[str, Any]) -> None:
        self.handle._control(self.id, message)

    async def on_data(self, frame: bytes) -> None:
        self.handle._data(frame)

    async def on_done(self) -> None:
        self.handle._wire_done(self.id)

    async def on_lost(self, reason: str) -> None:
        self.handle._wire_lost(self.id, reason)


class ExecHandle:
    """A running request: iterate it for events until every target has ended.

    Created by :meth:`NodeClient.exec` or :meth:`NodeClient.attach`. With a client that
    resumes, a dropped connection or a ``peer-lost`` on the path is repaired by resending the
    request for the open targets (``attach`` from the received offsets once a job started,
    ``exec`` with the same id and digest before): no gap, no duplicate, one ``Exit`` per job.
    Requests with stdin are not resumed (what the node received of it is not known).
    """

    def __init__(
        self,
        link: Link,
        request_id: str,
        stdin: Stdin | None,
        *,
        client: NodeClient | None = None,
        request: dict[str, Any] | None = None,
        targets: Mapping[str, TargetProgress] | None = None,
    ) -> None:
        self._link = link
        self.id = request_id
        self._stdin = stdin
        self._client = client
        self._request = request
        self._events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._targets: dict[str, TargetProgress] = dict(targets or {})
        self._jobs: dict[int, str] = {}
        self._channels: dict[str, int] = {}
        self._wire = request_id  # the first wire id (attach: not the request id)
        self._wires: dict[str, list[str] | None] = {request_id: None}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stdin_writer: asyncio.Task[None] | None = None
        self._resuming = 0
        self._ack_pending = False
        self._ended = False
        self._finished = False

    def __aiter__(self) -> ExecHandle:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        item = await self._events.get()
        if item is None:
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        if isinstance(item, Output):
            stream = STDOUT if item.stream == "stdout" else STDERR
            target = self._targets.get(item.node)
            if target is not None and target.ack.consume(stream, item.offset + len(item.data)):
                self._schedule_ack()
        return item

    async def result(self) -> ExecResult:
        """Consume the remaining events and collect them per node."""
        result = ExecResult()
        out: dict[str, tuple[list[bytes], list[bytes]]] = {}
        async for event in self:
            if isinstance(event, Output):
                parts = out.setdefault(event.node, ([], []))
                parts[event.stream == "stderr"].append(event.data)
            elif isinstance(event, Exit):
                result.nodes.setdefault(event.node, NodeResult()).exit = event
            elif isinstance(event, Failed):
                result.failures.append(event)
                if event.node is not None:
                    result.nodes.setdefault(event.node, NodeResult()).failure = event
        for node, (stdout, stderr) in out.items():
            entry = result.nodes.setdefault(node, NodeResult())
            entry.stdout, entry.stderr = b"".join(stdout), b"".join(stderr)
        return result

    def offsets(self, node: str) -> dict[str, int]:
        """Bytes of ``node``'s stdout and stderr received so far (what :meth:`NodeClient.attach`
        takes to continue from here in another process)."""
        target = self._targets.get(node)
        return target.resume_point() if target else {"stdout": 0, "stderr": 0}

    async def cancel(self) -> None:
        """Cancel every job of the request, on every node it reached."""
        await self._link.send(encode({"t": "cancel", "id": self._wire_for(None)}))

    async def stop_stdin(self) -> None:
        """Stop sending stdin (the caller gave up): a stream being sent is closed where it
        stands, with no ``eof``; returns once it is."""
        writer = self._stdin_writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def signal(self, node: str, sig: str) -> None:
        """Deliver ``sig`` (e.g. ``"SIGINT"``) to the process group of the job on ``node``."""
        await self._link.send(encode({"t": "signal", "ch": self._channel(node), "signal": sig}))

    async def notify(self, kind: str, data: Any = None, node: str | None = None) -> None:
        """Send a notification down to the executing node(s) plugins (one node, or all)."""
        where = {"ch": self._channel(node)} if node is not None else {"id": self._wire_for(None)}
        await self._link.send(encode({"t": "notify", **where, "kind": kind, "data": data}))

    def _wire_for(self, node: str | None) -> str:
        for wire, targets in reversed(self._wires.items()):
            if node is None or targets is None or node in targets:
                return wire
        return self._wire

    def _channel(self, node: str) -> int:
        try:
            return self._channels[node]
        except KeyError:
            raise ExecError(
                f"no running job on node {node!r} in this request", node=node, code="bad-request"
            ) from None

    async def _write_stdin(self, ch: int, data: Stdin) -> None:
        """Send ``data`` as the job's stdin, then ``eof``. A stream is sent as it comes, each
        frame awaited (the link's write buffer, then TCP, push back on a slow job); a stream
        that fails never reaches ``eof``: the request is cancelled and iterating the handle
        raises what the stream raised, so a half-sent input is never taken as whole."""
        offset = 0
        pieces = aiter(_pieces(data))
        while True:
            try:
                piece = await anext(pieces)
            except StopAsyncIteration:
                break
            except Exception as exc:
                with contextlib.suppress(TopoError):
                    await self.cancel()
                self._events.put_nowait(exc)
                return
            view = memoryview(piece)
            try:
                for start in range(0, len(view), CHUNK_SIZE):
                    part = view[start : start + CHUNK_SIZE]
                    await self._link.send(pack_data(STDIN, ch, offset, part))
                    offset += len(part)
            except TopoError:
                return  # the link was lost: the handle hears it (on_lost) and reports it
        with contextlib.suppress(TopoError):
            await self._link.send(encode({"t": "eof", "ch": ch}))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Acks -----------------------------------------------------------------------------------
    def _schedule_ack(self) -> None:
        if not self._ack_pending:
            self._ack_pending = True
            self._spawn(self._send_acks())

    async def _send_acks(self) -> None:
        """Acks go out after the event was handed over, coalesced per job: never awaited on the
        path of an event."""
        self._ack_pending = False
        for node, target in self._targets.items():
            ch = self._channels.get(node)
            if ch is not None and target.ack.due:
                stdout, stderr = target.ack.take()
                with contextlib.suppress(TopoError):  # a lost link resumes from received offsets
                    await self._link.send(
                        encode({"t": "ack", "ch": ch, "stdout": stdout, "stderr": stderr})
                    )

    # Link handler (the request's first wire) ------------------------------------------------
    async def on_control(self, msg: dict[str, Any]) -> None:
        self._control(self._wire, msg)

    async def on_data(self, frame: bytes) -> None:
        self._data(frame)

    async def on_done(self) -> None:
        self._wire_done(self._wire)

    async def on_lost(self, reason: str) -> None:
        self._wire_lost(self._wire, reason)

    def _control(self, wire: str, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        put = self._events.put_nowait
        if kind == "started":
            node, ch = msg["node"], msg["ch"]
            target = self._targets.setdefault(node, TargetProgress(node))
            self._jobs[ch] = node
            self._channels[node] = ch
            target.ack.threshold = AckPolicy(msg.get("window")).threshold
            target.attempts = 0
            if target.started:
                return  # a resumed job: the application already saw it start
            target.started = True
            put(Started(node, msg.get("pid"), msg.get("path", [])))
            if self._stdin is not None:
                self._stdin_writer = asyncio.ensure_future(self._write_stdin(ch, self._stdin))
                self._tasks.add(self._stdin_writer)
                self._stdin_writer.add_done_callback(self._tasks.discard)
        elif kind == "exit":
            node = self._jobs.pop(msg["ch"], None)
            ended = self._targets.get(node) if node is not None else None
            if node is None or ended is None:
                put(ProtocolError(f"exit on unknown channel {msg['ch']}"))
                return
            self._channels.pop(node, None)
            ended.open = False
            try:
                ended.stream.exit(msg.get("stdout_bytes"), msg.get("stderr_bytes"))
            except ProtocolError as exc:
                put(exc)
                return
            put(
                Exit(
                    msg["node"],
                    msg.get("code"),
                    msg.get("signal"),
                    msg.get("duration", 0.0),
                    msg.get("timed_out", False),
                    msg.get("cancelled", False),
                    tuple(msg.get("snapshots", ())),
                )
            )
        elif kind == "error":
            self._error(msg)
        elif kind == "notify":
            put(Notification(msg.get("node") or "", msg["kind"], msg.get("data")))

    def _error(self, msg: dict[str, Any]) -> None:
        node: str | None = msg.get("node")
        if "ch" in msg:
            gone = self._jobs.pop(msg["ch"], None)
            if gone is not None:
                self._channels.pop(gone, None)
        target = self._targets.get(node) if node is not None else None
        code = msg["code"]
        if (
            node is not None
            and target is not None
            and target.open
            and self._resumable()
            and (code == "peer-lost" or (code == "unreachable" and target.attempts > 0))
        ):
            self._channels.pop(node, None)
            self._resume([node], msg.get("hop"), code, msg["message"])
            return
        if target is not None:
            target.open = False
        self._events.put_nowait(Failed(node, msg.get("hop"), code, msg["message"]))

    def _data(self, frame: bytes) -> None:
        stream, ch, offset, payload = unpack_data(frame)
        node = self._jobs.get(ch)
        target = self._targets.get(node) if node is not None else None
        if node is None or target is None or stream == STDIN:
            return
        try:
            target.stream.data(stream, offset, len(payload))
        except ProtocolError as exc:
            self._events.put_nowait(exc)
            return
        self._events.put_nowait(Output(node, _NAMES[stream], bytes(payload), offset))

    def _wire_done(self, wire: str) -> None:
        self._wires.pop(wire, None)
        self._maybe_end()

    def _wire_lost(self, wire: str, reason: str) -> None:
        names = self._wires.pop(wire, None)
        lost = [n for n, t in self._targets.items() if t.open and (names is None or n in names)]
        for node in lost:
            ch = self._channels.pop(node, None)
            if ch is not None:
                del self._jobs[ch]
        if lost and self._resumable():
            self._resume(lost, None, "peer-lost", f"connection lost: {reason}")
        elif lost or names is None:
            for node in lost:
                self._targets[node].open = False
            self._events.put_nowait(Failed(None, None, "peer-lost", f"connection lost: {reason}"))
        self._maybe_end()

    def _maybe_end(self) -> None:
        if not self._wires and not self._resuming and not self._ended:
            self._ended = True
            self._events.put_nowait(None)

    # Resume ---------------------------------------------------------------------------------
    def _resumable(self) -> bool:
        return self._client is not None and self._client.resumes and self._stdin is None

    def _resume(self, nodes: list[str], hop: str | None, code: str, reason: str) -> None:
        self._resuming += 1
        self._spawn(self._resume_task(nodes, hop, code, reason))

    async def _resume_task(self, nodes: list[str], hop: str | None, code: str, reason: str) -> None:
        """Resend the request for ``nodes`` until it is accepted or the attempts run out; then
        the failure that started it (``hop``, ``code``) is reported, with the last reason."""
        client = self._client
        assert client is not None
        try:
            while True:
                attempt = max(self._targets[n].attempts for n in nodes)
                if attempt >= client.retries:
                    for node in nodes:
                        self._targets[node].open = False
                        self._events.put_nowait(
                            Failed(
                                node,
                                hop,
                                code,
                                f"{reason} (gave up resuming after {attempt} attempts)",
                            )
                        )
                    return
                for node in nodes:
                    self._targets[node].attempts += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
                try:
                    link = await client.link()
                    self._link = link
                    for msg in self._resume_messages(client, nodes):
                        self._wires[msg["id"]] = (
                            [msg["target"]] if isinstance(msg["target"], str) else msg["target"]
                        )
                        await link.request(msg, _Wire(self, msg["id"]))
                    return
                except TopoError as exc:
                    reason = str(exc)
        finally:
            self._resuming -= 1
            self._maybe_end()

    def _resume_messages(self, client: NodeClient, nodes: list[str]) -> list[dict[str, Any]]:
        started = [n for n in nodes if self._targets[n].started or self._request is None]
        fresh = [n for n in nodes if n not in started]
        messages = []
        for kind, share in (("attach", started), ("exec", fresh)):
            if not share:
                continue
            base = {"t": "attach"} if kind == "attach" else dict(self._request or {})
            messages.append(
                {
                    **base,
                    "id": client.wire_id(self.id),
                    "origin": self.id,
                    "target": share[0] if len(share) == 1 else share,
                    "resume": {n: self._targets[n].resume_point() for n in share},
                }
            )
        return messages
