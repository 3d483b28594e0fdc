"""One inbound connection: the requests it carries, their channels, and their jobs.

The websockets adapter feeds every frame to :meth:`Session.handle_text` or
:meth:`Session.handle_binary`, in order, and calls :meth:`Session.close` when the connection
ends. A request's target that is this node becomes a
:class:`~codebolt_topo.node.jobs.held.Subscription` to the job the node holds for the request id (a
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

from codebolt_topo.errors import ExecError, ProtocolError, TopoError
from codebolt_topo.node.forward import Forward, ForwardedJob, forward_request
from codebolt_topo.node.jobs.executor import LocalJob, parse_signal
from codebolt_topo.node.jobs.held import Subscription
from codebolt_topo.node.security.limits import Usage, pipes_of
from codebolt_topo.wire.codec import (
    decode,
    encode,
    error_message,
    fingerprint,
    request_id_of,
    resume_offsets,
    shown,
    targets_of,
)
from codebolt_topo.wire.frames import STDIN, unpack_data
from codebolt_topo.wire.messages import (
    ERROR_CODES,
    Ack,
    Cancel,
    Configure,
    Detach,
    Eof,
    Info,
    Notify,
    Presence,
    Signal,
    Sync,
)
from codebolt_topo.wire.tracking import ChannelTable, RequestTracker

if TYPE_CHECKING:
    from codebolt_topo.node.core import NodeCore

__all__ = ["InboundRequest", "Session"]

log = logging.getLogger(__name__)
_LOGGED = 300
"""Characters of a refusal's message written to node.log (it may quote what a peer sent)."""
Job = Subscription | ForwardedJob


class InboundRequest:
    """An ``exec`` received on a session: open targets, local jobs, downstream shares."""

    __slots__ = ("cancelled", "counted", "detached", "forwards", "id", "local", "tracker")

    def __init__(self, request_id: str, targets: list[str]) -> None:
        self.id = request_id
        self.tracker = RequestTracker(targets)
        self.local: list[Subscription] = []
        self.forwards: list[Forward] = []
        self.cancelled = False
        self.detached = False
        self.counted = True
        """Its open targets count in the session's ``open_targets`` (until it is detached)."""


class Session:
    """State of one inbound connection authenticated as ``principal``."""

    def __init__(
        self,
        core: NodeCore,
        principal: str,
        send: Callable[[str | bytes], Awaitable[None]],
        disconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.core = core
        self._disconnect = disconnect
        self.principal = principal
        self._send = send
        self.channels: ChannelTable[Job] = ChannelTable()
        self.requests: dict[str, InboundRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.syncs: dict[str, asyncio.Task[None]] = {}
        """``sync`` requests running, by id: a ``cancel`` of the id or the connection's end
        stops them (and the narrative commands they run, here and on the peer)."""
        self.closed = False
        self.usage = Usage()
        """Jobs this connection started, while they run (``limits.connection_jobs``/``_pipes``)."""
        self.open_targets = 0
        """Targets of this connection's requests not ended yet (``limits.connection_targets``)."""

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
        """Handle one control frame (errors are answered, never raised).

        A refused ``exec``/``attach`` whose id can be read is answered with that id and
        ``done``: its sender stops waiting. Its id must not be live here, or the answer would
        end the live request of that id instead."""
        try:
            msg = decode(text)
        except ProtocolError as exc:
            rid = request_id_of(text)
            if rid in self.requests:
                rid = None
            await self._refuse(rid, "frame", "bad-request", str(exc), done=rid is not None)
            return
        try:
            await self._dispatch(msg)
        except ProtocolError as exc:
            await self._refuse(None, msg["t"], "bad-request", str(exc))

    async def _refuse(
        self, request_id: str | None, what: str, code: str, text: str, done: bool = False
    ) -> None:
        """Answer a refused request with one ``error`` (node null), and log it: a peer sending
        many shows in node.log as a few lines and a count (see ``node/logs.py``)."""
        refused = error_message(request_id, None, self.core.name, code, text)
        if done:
            refused["done"] = True
        log.warning(
            "node %s: %s from %s refused (%s): %s",
            self.core.name,
            what,
            self.principal,
            code,
            text if len(text) <= _LOGGED else text[:_LOGGED] + "...",
            extra={"repeat_key": code},
        )
        await self.send(encode(refused))

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
            await self._refuse(None, "data frame", "bad-request", str(exc))

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise ProtocolError(f"{kind!r} is not a request a node accepts")
        core = self.core
        starts = kind in ("exec", "attach")
        if starts and msg["id"] in self.requests:
            # Before any refusal: an answer carrying this id would end the live request.
            raise ProtocolError(f"request id {msg['id']!r} is already in use on this connection")
        refusal = core.refusal(self.principal, kind, msg)
        if refusal is None and starts:
            refusal = core.admission(msg, self.open_targets)
        if refusal is not None:
            code, text = refusal
            await self._refuse(msg.get("id"), kind, code, text, done=starts)
            return
        await handler(self, msg)

    # One handler per request type (see _HANDLERS); the codec checked each message's shape.
    async def _on_exec(self, msg: dict[str, Any]) -> None:
        # An Exec or Attach, kept a plain dict: each hop stamps and rewrites it on its way down.
        self._exec(msg)

    async def _on_ack(self, msg: Ack) -> None:
        await self._ack(msg)

    async def _on_detach(self, msg: Detach) -> None:
        request = self.requests.pop(msg["id"], None)
        if request is not None:
            await self._detach(request)

    async def _on_info(self, msg: Info) -> None:
        await self.send(encode({**self.core.info(bool(msg.get("detail"))), **_reply_id(msg)}))

    async def _on_presence(self, msg: Presence) -> None:
        report = await self.core.presence.report(msg["node"], float(msg.get("timeout", 2.0)))
        await self.send(encode({"t": "presence", "node": msg["node"], **report, **_reply_id(msg)}))

    async def _on_configure(self, msg: Configure) -> None:
        reply = await self.core.configure(msg["config"])
        await self.send(encode({**reply, **_reply_id(msg)}))

    async def _on_cancel(self, msg: Cancel) -> None:
        request = self.requests.get(msg["id"])
        if request is not None:
            await self._cancel(request)
        running = self.syncs.get(msg["id"])
        if running is not None:
            running.cancel()

    async def _on_sync(self, msg: Sync) -> None:
        rid = msg["id"]
        if rid in self.syncs:
            raise ProtocolError(f"sync id {rid!r} is already in use on this connection")
        task = asyncio.ensure_future(self._sync(msg))
        self.syncs[rid] = task
        task.add_done_callback(lambda _: self.syncs.pop(rid, None))

    async def _sync(self, msg: Sync) -> None:
        """Run one ``sync`` (``node/narrative_sync.py``): progress as ``notify`` frames with the
        request's id, then ``synced``, or one ``error`` naming why."""
        from codebolt_topo.node.narrative_sync import sync_along_edge

        rid, name = msg["id"], self.core.name

        async def progress(stage: str, moved: int) -> None:
            data = {"stage": stage, "bytes": moved, "peer": msg["peer"]}
            await self.send(
                encode({"t": "notify", "id": rid, "node": name, "kind": "sync", "data": data})
            )

        try:
            synced = await sync_along_edge(self.core, msg["peer"], msg["direction"], progress)
        except asyncio.CancelledError:
            if not self.closed:  # a ``cancel`` from the caller, who still waits for an answer
                text = f"node {name!r}: sync {msg['direction']} with {msg['peer']!r} cancelled"
                await self.send(encode(error_message(rid, None, name, "cancelled", text)))
            raise
        except TopoError as exc:
            code = (
                exc.code if isinstance(exc, ExecError) and exc.code in ERROR_CODES else "internal"
            )
            log.warning(
                "node %s: sync %s with %s failed: %s", name, msg["direction"], msg["peer"], exc
            )
            await self.send(encode(error_message(rid, None, name, code, str(exc))))
            return
        except Exception as exc:  # a bug must still answer: the orchestrator waits for it
            log.exception("node %s: sync %s with %s failed", name, msg["direction"], msg["peer"])
            await self.send(
                encode(
                    error_message(
                        rid, None, name, "internal", f"node {name!r}: sync failed: {exc!r}"
                    )
                )
            )
            return
        await self.send(encode({**synced, "id": rid}))

    async def _on_control(self, msg: Signal | Eof) -> None:
        await self._control(msg)

    async def _on_notify(self, msg: Notify) -> None:
        await self._notify_down(msg)

    def _exec(self, msg: dict[str, Any]) -> None:
        rid: str = msg["id"]
        targets = targets_of(msg)
        if msg["t"] == "exec" and "digest" not in msg:
            msg["digest"] = fingerprint(msg)  # where the request enters: the full target list
        request = self.requests[rid] = InboundRequest(rid, targets)
        self.open_targets += len(request.tracker.targets)
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
            await self.fail(
                request,
                name,
                name,
                "truncated",
                f"node {name!r} no longer holds request {key!r} (its retention "
                f"expired, or it never ran here): output from offsets "
                f"{resume_offsets(msg, name)} is lost",
            )
            return
        if held is None:
            refused = core.new_job_refusal(key, msg, self.usage)
            if refused is not None:
                code, text = refused
                log.warning(
                    "node %s: job from %s refused (%s): %s",
                    name,
                    self.principal,
                    code,
                    text,
                    extra={"repeat_key": code},
                )
                await self.fail(request, name, name, code, text)
                return
            held = core.jobs.open(
                key,
                msg.get("digest"),
                lambda sink: LocalJob(
                    node=name,
                    request=msg,
                    base_env=core.base_env,
                    workspace=core.workspace,
                    sink=sink,
                ),
                pipes=pipes_of(msg),
                connection=self.usage,
            )
        elif msg["t"] == "exec" and held.digest != msg.get("digest"):
            await self.fail(
                request,
                name,
                name,
                "conflict",
                f"node {name!r} already ran request {key!r} with another payload",
            )
            return
        held.joining += 1  # listed as followed while it starts (HeldJob.state)
        try:
            pid = await asyncio.shield(held.ready)
        except ExecError as exc:
            await self.fail(request, name, name, exc.code or "spawn-failed", str(exc))
            return
        finally:
            held.joining -= 1
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
            await self.send(
                encode(
                    {
                        "t": "started",
                        "id": request.id,
                        "ch": sub.ch,
                        "node": name,
                        "pid": pid,
                        "path": [*msg.get("path", ()), name],
                        "window": held.window,
                    }
                )
            )
            if request.cancelled:
                held.cancel()
            exit_message = await sub.pump(self.send)
            if exit_message is not None:
                await self.finish(request, name, exit_message)
        finally:
            core.jobs.detach(held, sub)
            self.channels.release(sub.ch)

    async def fail(
        self, request: InboundRequest, node: str | None, hop: str, code: str, message: str
    ) -> None:
        """Send ``error`` for ``node`` (None: every open target) and end what it names."""
        targets = request.tracker.open if node is None else [node]
        for target in targets:
            if request.tracker.is_open(target):
                await self.finish(
                    request, target, error_message(request.id, target, hop, code, message)
                )

    async def finish(self, request: InboundRequest, node: str, last: dict[str, Any]) -> None:
        """Send ``last`` (the ``exit`` or ``error`` that ends ``node`` of ``request``); when no
        target is left open it carries ``done`` and the request's id: one frame, not two, on
        every hop of the way back."""
        if request.tracker.end(node) and request.counted:
            self.open_targets -= 1
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

    async def _control(self, msg: Signal | Eof) -> None:
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
            raise ProtocolError(f"unknown signal {shown(msg.get('signal'))}") from None
        except ExecError:
            pass  # link lost; its handler reports peer-lost

    async def _notify_down(self, msg: Notify) -> None:
        kind, data = msg["kind"], msg.get("data")
        if "ch" in msg:
            job = self.channels.get(msg["ch"])
            jobs: list[Job] = [job] if job is not None else []
            request_id = job.job.key if isinstance(job, Subscription) else None
        else:
            request = self.requests.get(msg.get("id") or "")
            jobs = [*request.local] if request else []
            request_id = request.local[0].job.key if request and request.local else None
            for forward in request.forwards if request else ():
                await forward.link.send(
                    encode({"t": "notify", "id": forward.link_id, "kind": kind, "data": data})
                )
        for job in jobs:
            if isinstance(job, ForwardedJob):
                await job.notify(kind, data)
            elif request_id is not None:
                self.core.call_hook(
                    "codebolt_node_notification", request_id=request_id, kind=kind, data=data
                )

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for this session's jobs and forwards to finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _ack(self, msg: Ack) -> None:
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
        if request.counted:  # what is still open will not end on this connection
            request.counted = False
            self.open_targets -= len(request.tracker.open)
        for sub in request.local:
            sub.close()
        for forward in request.forwards:
            with contextlib.suppress(ExecError):
                await forward.link.send(encode({"t": "detach", "id": forward.link_id}))
            forward.link.forget(forward.link_id)

    async def close(self) -> None:
        """The connection ended: detach from every job it started (they keep running) and
        stop its syncs (nobody is left to report them to)."""
        self.closed = True
        for running in list(self.syncs.values()):
            running.cancel()
        if self.syncs:
            await asyncio.gather(*self.syncs.values(), return_exceptions=True)
        requests, self.requests = list(self.requests.values()), {}
        for request in requests:
            await self._detach(request)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


_HANDLERS: dict[str, Callable[[Session, Any], Awaitable[None]]] = {
    "exec": Session._on_exec,
    "attach": Session._on_exec,
    "ack": Session._on_ack,
    "detach": Session._on_detach,
    "info": Session._on_info,
    "configure": Session._on_configure,
    "presence": Session._on_presence,
    "cancel": Session._on_cancel,
    "signal": Session._on_control,
    "eof": Session._on_control,
    "notify": Session._on_notify,
    "sync": Session._on_sync,
}
"""The requests a node accepts, by type; anything else is answered ``bad-request``."""


def _reply_id(msg: Info | Configure | Presence) -> dict[str, Any]:
    return {"id": msg["id"]} if "id" in msg else {}
