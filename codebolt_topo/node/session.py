"""One inbound connection: the requests it carries, their channels, and their jobs.

The websockets adapter feeds every frame to :meth:`Session.handle_text` or
:meth:`Session.handle_binary`, in order, and calls :meth:`Session.close` when the connection
ends (which cancels everything the connection started). A request's targets that are this node
run as :class:`~codebolt_topo.node.executor.LocalJob`; the rest are split by next hop and sent
down the router's links as :class:`~codebolt_topo.node.forward.Forward` shares. When every target
has ended (``exit`` or ``error``) the session sends ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from codebolt_topo.errors import ExecError, ProtocolError, TopoError
from codebolt_topo.node.executor import LocalJob, parse_signal
from codebolt_topo.node.forward import Forward, ForwardedJob
from codebolt_topo.node.protocol import (
    STDIN,
    ChannelTable,
    RequestTracker,
    decode,
    encode,
    error_message,
    targets_of,
    unpack_data,
)
from codebolt_topo.node.router import Router, check_forward

if TYPE_CHECKING:
    from codebolt_topo.node.core import NodeCore

__all__ = ["InboundRequest", "Session"]

log = logging.getLogger(__name__)
Job = LocalJob | ForwardedJob


class InboundRequest:
    """An ``exec`` received on a session: open targets, local jobs, downstream shares."""

    __slots__ = ("cancelled", "forwards", "id", "local", "tracker")

    def __init__(self, request_id: str, targets: list[str]) -> None:
        self.id = request_id
        self.tracker = RequestTracker(targets)
        self.local: list[LocalJob] = []
        self.forwards: list[Forward] = []
        self.cancelled = False


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
            if isinstance(job, LocalJob):
                await job.write_stdin(offset, payload)
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
            await self.send(encode(error_message(msg.get("id"), None, core.name, code, text)))
            if kind == "exec":
                await self.send(encode({"t": "done", "id": msg["id"]}))
            return
        if kind == "exec":
            self._exec(msg)
        elif kind == "info":
            await self.send(encode({**core.info(), **_reply_id(msg)}))
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
        request = self.requests[rid] = InboundRequest(rid, targets)
        name = self.core.name
        remote = [t for t in targets if t != name]
        if len(remote) != len(targets):
            self._spawn(self._run_local(request, msg))
        if remote:
            self._spawn(self._forward(request, msg, remote))

    async def _run_local(self, request: InboundRequest, msg: dict[str, Any]) -> None:
        core = self.core
        job = LocalJob(node=core.name, ch=0, request=msg, base_env=core.base_env,
                       workspace=core.workspace, send=self.send)
        job.ch = self.channels.allocate(job)
        try:
            pid = await job.start()
        except ExecError as exc:
            self.channels.release(job.ch)
            await self.fail(request, core.name, core.name, exc.code, str(exc))
            return
        request.local.append(job)
        core.jobs.add(job)
        try:
            await self.send(encode({"t": "started", "id": request.id, "ch": job.ch,
                                    "node": core.name, "pid": pid,
                                    "path": [*msg.get("path", ()), core.name]}))
            if request.cancelled or self.closed:
                job.cancel()
            core.call_hook("codebolt_node_job_started", request_id=request.id, pid=pid)
            exit_msg = await job.run()
        finally:
            core.jobs.discard(job)
            self.channels.release(job.ch)
        await self.send(encode(exit_msg))
        core.call_hook("codebolt_node_job_ended", request_id=request.id, exit=exit_msg)
        await self.end_target(request, core.name)

    async def _forward(self, request: InboundRequest, msg: dict[str, Any],
                       targets: list[str]) -> None:
        core = self.core
        hops = msg.get("hops", core.runtime.hop_limit)
        path: list[str] = msg.get("path", [])
        refused = check_forward(core.name, hops, path)
        if refused is not None:
            for target in targets:
                await self.fail(request, target, core.name, *refused)
            return
        router: Router = core.router
        pending: dict[str, list[str]] = {}
        for target in targets:
            hops_for = router.candidates(target)
            if hops_for:
                pending[target] = hops_for
            else:
                await self.fail(request, target, core.name, "unreachable",
                                f"node {core.name!r} has no route to {target!r}")
        down = {**msg, "hops": hops - 1, "path": [*path, core.name]}
        while pending:
            retry: dict[str, list[str]] = {}
            for hop, share in Router.split(pending).items():
                if request.cancelled or self.closed:
                    for target in share:
                        await self.fail(request, target, core.name, "cancelled",
                                        "request cancelled before it was forwarded")
                    continue
                forward: Forward | None = None
                try:
                    link = await router.link(hop)
                    forward = Forward(self, request, link, link.fresh_id(request.id), share)
                    request.forwards.append(forward)
                    await link.request({**down, "id": forward.link_id,
                                        "target": share[0] if len(share) == 1 else share},
                                       forward)
                except TopoError as exc:
                    if forward is not None:
                        request.forwards.remove(forward)
                    for target in share:
                        rest = pending[target][1:]
                        if rest:
                            retry[target] = rest
                        else:
                            await self.fail(request, target, core.name, "unreachable",
                                            f"node {core.name!r} cannot reach next hop "
                                            f"{hop!r} for target {target!r}: {exc}")
            pending = retry

    async def fail(self, request: InboundRequest, node: str | None, hop: str, code: str,
                   message: str) -> None:
        """Send ``error`` for ``node`` (None: every open target) and end what it names."""
        targets = request.tracker.open if node is None else [node]
        for target in targets:
            if request.tracker.is_open(target):
                await self.send(encode(error_message(request.id, target, hop, code, message)))
                await self.end_target(request, target)

    async def end_target(self, request: InboundRequest, node: str) -> None:
        """``node`` of ``request`` ended; sends ``done`` when it was the last open target."""
        request.tracker.end(node)
        if request.tracker.done and self.requests.get(request.id) is request:
            del self.requests[request.id]
            await self.send(encode({"t": "done", "id": request.id}))

    async def _cancel(self, request: InboundRequest) -> None:
        request.cancelled = True
        for job in request.local:
            job.cancel()
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
                await job.eof() if isinstance(job, ForwardedJob) else job.close_stdin()
            elif isinstance(job, ForwardedJob):
                parse_signal(msg["signal"])
                await job.signal(msg["signal"])
            else:
                job.signal(msg["signal"])
        except (ValueError, KeyError):
            raise ProtocolError(f"unknown signal {msg.get('signal')!r}") from None
        except ExecError:
            pass  # link lost; its handler reports peer-lost

    async def _notify_down(self, msg: dict[str, Any]) -> None:
        kind, data = msg["kind"], msg.get("data")
        if "ch" in msg:
            job = self.channels.get(msg["ch"])
            jobs: list[Job] = [job] if job is not None else []
            request_id = job.request_id if isinstance(job, LocalJob) else None
        else:
            request = self.requests.get(msg.get("id") or "")
            jobs = [*request.local] if request else []
            request_id = request.id if request else None
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

    async def close(self) -> None:
        """The connection ended: cancel every job it started and wait for them to stop."""
        self.closed = True
        for request in list(self.requests.values()):
            await self._cancel(request)
            for forward in request.forwards:
                forward.link.forget(forward.link_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _reply_id(msg: dict[str, Any]) -> dict[str, Any]:
    return {"id": msg["id"]} if "id" in msg else {}
