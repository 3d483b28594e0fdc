"""One inbound connection: the requests it carries, their channels, and their jobs.

The websockets adapter feeds every frame to :meth:`Session.handle_text` or
:meth:`Session.handle_binary`, in order, and calls :meth:`Session.close` when the connection
ends. A request's target that is this node becomes a
:class:`~codebolt_topo.node.jobs.Subscription` to the job the node holds for the request id (a
new job, or the one a duplicate or resumed request finds); the rest are split by next hop and
sent down the router's links as :class:`~codebolt_topo.node.forward.Forward` shares. When every
target has ended (``exit`` or ``error``) the session sends ``done``.

Closing the connection does not kill jobs: local subscriptions detach (the job keeps running
for its lease) and every forwarded share is told ``detach`` downstream, so the executing node
holds the output for the caller's resume instead of pushing it into a dead path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from codebolt_topo.errors import ExecError, ProtocolError
from codebolt_topo.node.executor import LocalJob, parse_signal
from codebolt_topo.node.forward import Forward, ForwardedJob, forward_request
from codebolt_topo.node.jobs import Subscription
from codebolt_topo.node.protocol import (
    STDIN,
    ChannelTable,
    RequestTracker,
    decode,
    encode,
    error_message,
    fingerprint,
    resume_offsets,
    targets_of,
    unpack_data,
)

if TYPE_CHECKING:
    from codebolt_topo.node.core import NodeCore

__all__ = ["InboundRequest", "Session"]

log = logging.getLogger(__name__)
Job = Subscription | ForwardedJob


class InboundRequest:
    """An ``exec`` received on a session: open targets, local jobs, downstream shares."""

    __slots__ = ("cancelled", "detached", "forwards", "id", "local", "tracker")

    def __init__(self, request_id: str, targets: list[str]) -> None:
        self.id = request_id
        self.tracker = RequestTracker(targets)
        self.local: list[Subscription] = []
        self.forwards: list[Forward] = []
        self.cancelled = False
        self.detached = False


class Session:
    """State of one inbound connection authenticated as ``principal``."""

    def __init__(self, core: NodeCore, principal: str,
                 send: Callable[[str | bytes], Awaitable[None]],
                 disconnect: Callable[[], Awaitable[None]] | None = None) -> None:
        self.core = core
        self._disconnect = disconnect
        self.principal = principal
        self._send = send
        self.channels: ChannelTable[Job] = ChannelTable()
        self.requests: dict[str, InboundRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def send(self, data: str | bytes) -> None:
        """Send a frame upstream; once the connection is gone, sends are dropped."""
        if self.closed:
            return
        try:
            await self._send(data)
        except ConnectionClosed:
            self.closed = True

    def revoke(self) -> None:
        """The principal's token is no longer accepted: drop the connection."""
        if self._disconnect is not None:
            self._spawn(self._disconnect())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle_text(self, text: str) -> None:
        """Handle one control frame (errors are answered, never raised)."""
        try:
            msg = decode(text)
            await self._dispatch(msg)
        except ProtocolError as exc:
            await self.send(encode(error_message(None, None, self.core.name, "bad-request",
                                                 str(exc))))

    async def handle_binary(self, frame: bytes) -> None:
        """Handle one stdin frame for a job this connection started."""
        try:
            stream, ch, offset, payload = unpack_data(frame)
            job = self.channels.get(ch)
            if stream != STDIN or job is None:
                raise ProtocolError(f"data frame for unknown channel {ch} or stream {stream}")
            if isinstance(job, Subscription):
                await job.job.local.write_stdin(offset, payload)
            else:
                await job.stdin(frame)
        except (ProtocolError, ExecError) as exc:
            await self.send(encode(error_message(None, None, self.core.name, "bad-request",
                                                 str(exc))))

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        core = self.core
        refusal = core.refusal(self.principal, kind, msg)
        if refusal is not None:
            code, text = refusal
            refused = error_message(msg.get("id"), None, core.name, code, text)
            if kind in ("exec", "attach"):
                refused["done"] = True
            await self.send(encode(refused))
            return
        if kind in ("exec", "attach"):
            self._exec(msg)
        elif kind == "ack":
            await self._ack(msg)
        elif kind == "detach":
            request = self.requests.pop(msg["id"], None)
            if request is not None:
                await self._detach(request)
        elif kind == "info":
            await self.send(encode({**core.info(bool(msg.get("detail"))), **_reply_id(msg)}))
        elif kind == "configure":
            await self.send(encode({**await core.configure(msg["config"]), **_reply_id(msg)}))
        elif kind == "cancel":
            request = self.requests.get(msg["id"])
            if request is not None:
                await self._cancel(request)
        elif kind in ("signal", "eof"):
            await self._control(msg)
        elif kind == "notify":
            await self._notify_down(msg)
        else:
            raise ProtocolError(f"{kind!r} is not a request a node accepts")

    def _exec(self, msg: dict[str, Any]) -> None:
        rid: str = msg["id"]
        if rid in self.requests:
            raise ProtocolError(f"request id {rid!r} is already in use on this connection")
        targets = targets_of(msg)
        if msg["t"] == "exec" and "digest" not in msg:
            msg["digest"] = fingerprint(msg)  # where the request enters: the full target list
        request = self.requests[rid] = InboundRequest(rid, targets)
        name = self.core.name
        remote = [t for t in targets if t != name]
        if len(remote) != len(targets):
            self._spawn(self._run_local(request, msg))
        if remote:
            self._spawn(forward_request(self, request, msg, remote))

    async def _run_local(self, request: InboundRequest, msg: dict[str, Any]) -> None:
        core, name = self.core, self.core.name
        key: str = msg.get("origin", msg["id"])
        held = core.jobs.get(key)
        if held is None and msg["t"] == "attach":
            await self.fail(request, name, name, "truncated",
                            f"node {name!r} no longer holds request {key!r} (its retention "
                            f"expired, or it never ran here): output from offsets "
                            f"{resume_offsets(msg, name)} is lost")
            return
        if held is None:
            held = core.jobs.open(key, msg.get("digest"), lambda sink: LocalJob(
                node=name, request=msg, base_env=core.base_env, workspace=core.workspace,
                sink=sink))
        elif msg["t"] == "exec" and held.digest != msg.get("digest"):
            await self.fail(request, name, name, "conflict",
                            f"node {name!r} already ran request {key!r} with another payload")
            return
        try:
            pid = await asyncio.shield(held.ready)
        except ExecError as exc:
            await self.fail(request, name, name, exc.code or "spawn-failed", str(exc))
            return
        if self.closed or request.detached:
            return
        sub = Subscription(held)
        try:
            core.jobs.attach(held, sub, *resume_offsets(msg, name))
        except ExecError as exc:
            await self.fail(request, name, name, "truncated", str(exc))
            return
        sub.ch = self.channels.allocate(sub)
        request.local.append(sub)
        try:
            await self.send(encode({"t": "started", "id": request.id, "ch": sub.ch,
                                    "node": name, "pid": pid,
                                    "path": [*msg.get("path", ()), name],
                                    "window": held.window}))
            if request.cancelled:
                held.cancel()
            exit_message = await sub.pump(self.send)
            if exit_message is not None:
                await self.finish(request, name, exit_message)
        finally:
            core.jobs.detach(held, sub)
            self.channels.release(sub.ch)

    async def fail(self, request: InboundRequest, node: str | None, hop: str, code: str,
                   message: str) -> None:
        """Send ``error`` for ``node`` (None: every open target) and end what it names."""
        targets = request.tracker.open if node is None else [node]
        for target in targets:
            if request.tracker.is_open(target):
                await self.finish(request, target,
                                  error_message(request.id, target, hop, code, message))

    async def finish(self, request: InboundRequest, node: str, last: dict[str, Any]) -> None:
        """Send ``last`` (the ``exit`` or ``error`` that ends ``node`` of ``request``); when no
        target is left open it carries ``done`` and the request's id: one frame, not two, on
        every hop of the way back."""
        request.tracker.end(node)
        message = {key: value for key, value in last.items() if key not in ("done", "id")}
        if last.get("t") == "error":
            message["id"] = request.id
        if request.tracker.done and self.requests.get(request.id) is request:
            del self.requests[request.id]
            message["id"] = request.id
            message["done"] = True
        await self.send(encode(message))

    async def _cancel(self, request: InboundRequest) -> None:
        request.cancelled = True
        for sub in request.local:
            sub.job.cancel()
        for forward in request.forwards:
            # A lost link is fine: its handler reports peer-lost for those targets.
            with contextlib.suppress(ExecError):
                await forward.link.send(encode({"t": "cancel", "id": forward.link_id}))

    async def _control(self, msg: dict[str, Any]) -> None:
        job = self.channels.get(msg["ch"])
        if job is None:
            return  # the job already ended: a late signal/eof is harmless
        try:
            if msg["t"] == "eof":
                await job.eof() if isinstance(job, ForwardedJob) else job.job.local.close_stdin()
            elif isinstance(job, ForwardedJob):
                parse_signal(msg["signal"])
                await job.signal(msg["signal"])
            else:
                job.job.local.signal(msg["signal"])
        except (ValueError, KeyError):
            raise ProtocolError(f"unknown signal {msg.get('signal')!r}") from None
        except ExecError:
            pass  # link lost; its handler reports peer-lost

    async def _notify_down(self, msg: dict[str, Any]) -> None:
        kind, data = msg["kind"], msg.get("data")
        if "ch" in msg:
            job = self.channels.get(msg["ch"])
            jobs: list[Job] = [job] if job is not None else []
            request_id = job.job.key if isinstance(job, Subscription) else None
        else:
            request = self.requests.get(msg.get("id") or "")
            jobs = [*request.local] if request else []
            request_id = (request.local[0].job.key if request and request.local else None)
            for forward in request.forwards if request else ():
                await forward.link.send(encode({"t": "notify", "id": forward.link_id,
                                                "kind": kind, "data": data}))
        for job in jobs:
            if isinstance(job, ForwardedJob):
                await job.notify(kind, data)
            elif request_id is not None:
                self.core.call_hook("codebolt_node_notification", request_id=request_id,
                                    kind=kind, data=data)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for this session's jobs and forwards to finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _ack(self, msg: dict[str, Any]) -> None:
        job = self.channels.get(msg["ch"])
        try:
            if isinstance(job, Subscription):
                job.ack(msg["stdout"], msg["stderr"])
            elif job is not None:
                await job.ack(msg["stdout"], msg["stderr"])
        except ExecError:
            pass  # link lost; its handler reports peer-lost and the caller resumes

    async def _detach(self, request: InboundRequest) -> None:
        """The caller of ``request`` went away: leave its jobs running, stop sending."""
        request.detached = True
        for sub in request.local:
            sub.close()
        for forward in request.forwards:
            with contextlib.suppress(ExecError):
                await forward.link.send(encode({"t": "detach", "id": forward.link_id}))
            forward.link.forget(forward.link_id)

    async def close(self) -> None:
        """The connection ended: detach from every job it started (they keep running)."""
        self.closed = True
        requests, self.requests = list(self.requests.values()), {}
        for request in requests:
            await self._detach(request)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _reply_id(msg: dict[str, Any]) -> dict[str, Any]:
    return {"id": msg["id"]} if "id" in msg else {}
