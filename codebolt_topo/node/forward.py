"""A share of a request forwarded over one link, seen from the hop that forwards it.

:class:`Forward` is the link :class:`~codebolt_topo.wire.link.Handler` for the ``exec`` this hop
sent downstream. It maps downstream channels to channels it allocates on the upstream session
(channels are hop-local), relays output frames with only the header rewritten, and turns a
request-wide downstream error or a lost link into one ``error`` per target still open, so the
upstream side never sees another hop's failure end targets that are not its own.
:func:`forward_request` picks next hops for a request's remote targets and sends the shares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codebolt_topo.errors import TopoError
from codebolt_topo.node.router import Router, check_forward
from codebolt_topo.wire.codec import encode, error_message
from codebolt_topo.wire.frames import HEADER, rechannel
from codebolt_topo.wire.tracking import RequestTracker

if TYPE_CHECKING:
    from codebolt_topo.node.session import InboundRequest, Session
    from codebolt_topo.wire.link import Link

__all__ = ["Forward", "ForwardedJob", "forward_request"]


class ForwardedJob:
    """Upstream channel of a job that runs further down: control goes to the link."""

    __slots__ = ("down_ch", "forward", "node")

    def __init__(self, forward: Forward, down_ch: int, node: str) -> None:
        self.forward = forward
        self.down_ch = down_ch
        self.node = node

    async def signal(self, name: str) -> None:
        await self.forward.link.send(encode({"t": "signal", "ch": self.down_ch, "signal": name}))

    async def eof(self) -> None:
        await self.forward.link.send(encode({"t": "eof", "ch": self.down_ch}))

    async def stdin(self, frame: bytes) -> None:
        await self.forward.link.send(rechannel(frame, self.down_ch))

    async def notify(self, kind: str, data: Any) -> None:
        await self.forward.link.send(
            encode({"t": "notify", "ch": self.down_ch, "kind": kind, "data": data})
        )

    async def ack(self, stdout: int, stderr: int) -> None:
        await self.forward.link.send(
            encode({"t": "ack", "ch": self.down_ch, "stdout": stdout, "stderr": stderr})
        )


class Forward:
    """Relays one downstream share of ``request`` back to ``session``."""

    def __init__(
        self,
        session: Session,
        request: InboundRequest,
        link: Link,
        link_id: str,
        targets: list[str],
    ) -> None:
        self.session = session
        self.request = request
        self.link = link
        self.link_id = link_id
        self.tracker = RequestTracker(targets)
        self._up: dict[int, int] = {}  # downstream ch -> upstream ch

    async def on_control(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        session = self.session
        if kind == "started":
            node = message["node"]
            new_up = session.channels.allocate(ForwardedJob(self, message["ch"], node))
            self._up[message["ch"]] = new_up
            await session.send(encode({**message, "id": self.request.id, "ch": new_up}))
            return
        down: int | None = message.get("ch")
        up = self._up.get(down) if down is not None else None
        if kind == "notify":
            if up is not None:
                await session.send(encode({**message, "ch": up}))
            elif down is None:
                await session.send(encode({**message, "id": self.request.id}))
        elif kind == "exit":
            await self._finish(down, {**message, "ch": up}, message["node"])
        elif kind == "error":
            node = message.get("node")
            targets = [node] if node is not None else self.tracker.open
            for target in targets:
                relayed = {**message, "id": self.request.id, "node": target}
                if target == node and up is not None:
                    relayed["ch"] = up
                else:
                    relayed.pop("ch", None)
                await self._finish(down if target == node else None, relayed, target)

    async def _finish(self, down: int | None, last: dict[str, Any], node: str) -> None:
        if down is not None and (up := self._up.pop(down, None)) is not None:
            self.session.channels.release(up)
        if self.tracker.end(node):
            await self.session.finish(self.request, node, last)

    async def on_data(self, frame: bytes) -> None:
        up = self._up.get(HEADER.unpack_from(frame)[1])
        if up is not None:
            await self.session.send(rechannel(frame, up))

    async def on_done(self) -> None:
        await self._fail_open(
            "internal",
            f"next hop {self.link.name!r} ended the request without a result for this target",
        )

    async def on_lost(self, reason: str) -> None:
        await self._fail_open(
            "peer-lost",
            f"node {self.session.core.name!r} lost its link to {self.link.name!r}: {reason}",
        )

    async def _fail_open(self, code: str, message: str) -> None:
        hop = self.session.core.name
        by_node: dict[str, tuple[int | None, int | None]] = {}
        for down_ch, up_ch in self._up.items():
            job = self.session.channels.get(up_ch)
            if isinstance(job, ForwardedJob):
                by_node[job.node] = (down_ch, up_ch)
        for target in self.tracker.open:
            down, up = by_node.get(target, (None, None))
            await self._finish(
                down, error_message(self.request.id, target, hop, code, message, up), target
            )


async def forward_request(
    session: Session, request: InboundRequest, msg: dict[str, Any], targets: list[str]
) -> None:
    """Send ``msg`` (an ``exec`` or ``attach``) on towards ``targets``, split by next hop.

    Each share keeps the request's original id in ``origin`` (the executing node's key) even
    when this link renames it; a target whose next hops all fail ends ``unreachable``. An
    ``exec`` leaves stamped on the next node's clock with the age it had here, so a request
    ages across hops and a hop cannot make a stale frame fresh again.
    """
    core = session.core
    hops = msg.get("hops", core.runtime.hop_limit)
    path: list[str] = msg.get("path", [])
    refused = check_forward(core.name, hops, path)
    if refused is not None:
        for target in targets:
            await session.fail(request, target, core.name, *refused)
        return
    router: Router = core.router
    pending: dict[str, list[str]] = {}
    for target in targets:
        hops_for = router.candidates(target)
        if hops_for:
            pending[target] = hops_for
        else:
            await session.fail(
                request,
                target,
                core.name,
                "unreachable",
                f"node {core.name!r} has no route to {target!r}",
            )
    down = {
        **msg,
        "hops": hops - 1,
        "path": [*path, core.name],
        "origin": msg.get("origin", msg["id"]),
    }
    while pending:
        retry: dict[str, list[str]] = {}
        for hop, share in Router.split(pending).items():
            if request.cancelled or request.detached or session.closed:
                for target in share:
                    await session.fail(
                        request,
                        target,
                        core.name,
                        "cancelled",
                        "request cancelled before it was forwarded",
                    )
                continue
            forward: Forward | None = None
            try:
                link = await router.link(hop)
                forward = Forward(session, request, link, link.fresh_id(request.id), share)
                request.forwards.append(forward)
                await link.request(
                    {
                        **down,
                        "id": forward.link_id,
                        "target": share[0] if len(share) == 1 else share,
                    },
                    forward,
                    age=core.clock.age(msg.get("issued")),  # re-stamped for the next node
                )
            except TopoError as exc:
                if forward is not None:
                    request.forwards.remove(forward)
                for target in share:
                    rest = pending[target][1:]
                    if rest:
                        retry[target] = rest
                    else:
                        await session.fail(
                            request,
                            target,
                            core.name,
                            "unreachable",
                            f"node {core.name!r} cannot reach next hop {hop!r} "
                            f"for target {target!r}: {exc}",
                        )
        pending = retry
