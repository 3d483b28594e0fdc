"""Sends heartbeats: an ``info`` call to each node over a connection kept open between beats.

Keeping the connection means a beat costs one small round trip, not a TCP and WebSocket
handshake, so a thousand nodes at a 30 s interval is background noise. A failed beat closes the
connection; the next beat opens a fresh one.

Each answer carries the generation of the wiring the daemon holds: one that answers with less
than the orchestrator pushed is a new daemon its own engine restarted in place (a Swarm task, a
container restarted by its policy), alive but unwired; the reconciler pushes its wiring again.

A hung node (SIGSTOP, a frozen VM) accepts TCP but never answers, not even a WebSocket close:
closing its connection must not hold up the pass, or one hung node would stall the heartbeats
and restarts of every other node for the transport's close timeout. So the close waits at most
the heartbeat timeout, and runs beside the pass rather than in it.

A prober made ``one_shot`` (a plain ``codebolt status``: one pass, then the process ends) keeps
nothing open: it asks each loopback node with one ``GET /info`` (``engine/http_info.py``), whose
opening and closing cost a fraction of a WebSocket's, and uses a WebSocket only where that does
not apply (a remote URL, which a proxy may stand in front of; a node that predates the path).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codebolt_topo.engine.http_info import ask_info, info_over_http
from codebolt_topo.engine.statekey import is_sealed, sealed_key_id
from codebolt_topo.errors import StateError, TopoError
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.wire.tls import pinned_client

if TYPE_CHECKING:
    from codebolt_topo.client import NodeClient

__all__ = ["LEFT", "HeartbeatProber", "JoinedBeat"]


@dataclass
class _Open:
    url: str
    stack: contextlib.AsyncExitStack
    client: NodeClient


@dataclass(frozen=True, slots=True)
class JoinedBeat:
    """A joined node's heartbeat as its neighbours see it (``presence``): ``state`` is up,
    left, lost or never (unknown: no neighbour answered), ``since`` when that began, ``via``
    the neighbour that said so; ``rtt_ms`` the round trip of a ping over its link (up)."""

    state: str
    via: str = ""
    since: float | None = None
    rtt_ms: float | None = None
    remote: str = ""

    def problem(self, node: str) -> str:
        """Why no heartbeat came back, in a status line's words ("" when one did)."""
        when = time.strftime("%H:%M:%S", time.localtime(self.since or 0))
        if self.state == "up":
            return "" if self.rtt_ms is not None else f"connected to {self.via}, no pong"
        return {
            "left": f"{LEFT} {when}",
            "lost": f"its link to {self.via} was lost at {when}",
            "never": f"not joined yet (codebolt state credentials {node})",
        }.get(self.state, "none of its neighbours answers")


LEFT = "left at"
"""How a joined node that left on purpose is reported (shown STOPPED, not failing)."""


class HeartbeatProber:
    """One persistent admin connection per node, used only for heartbeats (``one_shot``: none,
    see the module docstring)."""

    def __init__(self, *, one_shot: bool = False) -> None:
        self.one_shot = one_shot
        self._open: dict[str, _Open] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._connecting: dict[str, asyncio.Lock] = {}
        #: The wiring generation each node reported in its last answered heartbeat.
        self.generations: dict[str, int] = {}

    async def probe(self, node: NodeState, timeout: float) -> str | None:
        """None when the node answered within ``timeout``; otherwise why it did not."""
        if node.url is None:
            return "no endpoint recorded"
        if is_sealed(node.admin_token):
            return (
                f"not sent: no state key here ({sealed_key_id(node.admin_token)}) to act as admin"
            )
        try:
            info = await self._info(node, node.url, timeout)
        except TimeoutError:
            self._drop_aside(node.name)
            return f"no answer within {timeout:g} s"
        except (TopoError, OSError) as error:
            self._drop_aside(node.name)
            return str(error)
        self.generations[node.name] = int(info.get("generation", 0))
        return None

    async def _info(self, node: NodeState, url: str, timeout: float) -> dict[str, Any]:
        if self.one_shot and info_over_http(url):
            answer = await asyncio.wait_for(
                ask_info(
                    url, node.admin_token, name=node.name, tls=pinned_client(node.pinned_ca, url)
                ),
                timeout,
            )
            if answer.info is not None:
                return answer.info
        client = await asyncio.wait_for(self._client(node, url, timeout), timeout)
        return await asyncio.wait_for(client.info(), timeout)

    async def presence(self, via: NodeState, node: str, timeout: float) -> dict[str, Any]:
        """How ``via`` sees ``node``'s connections (a joined node's heartbeat: ``via`` pings
        it over the link it opened); raises like :meth:`probe` reports."""
        if via.url is None:
            raise StateError(f"{via.name} has no endpoint recorded")
        try:
            client = await asyncio.wait_for(self._client(via, via.url, timeout), timeout)
            return await asyncio.wait_for(client.presence(node, timeout), timeout * 2)
        except (TimeoutError, TopoError, OSError):
            self._drop_aside(via.name)
            raise

    async def joined(
        self, state: State, node: str, neighbours: list[str], timeout: float
    ) -> JoinedBeat:
        """Joined ``node``'s heartbeat, which only its neighbours can take (nothing here can
        reach it): asked of its join point first, then of ``neighbours``; the first that
        holds a link it opened pings it over that link. Else what the latest said."""
        held = state.nodes[node]
        first = str(held.handle.get("join_point", ""))
        seen: list[JoinedBeat] = []
        for via in [first, *(n for n in neighbours if n != first)]:
            neighbour = state.nodes.get(via)
            if neighbour is None or neighbour.url is None:
                continue
            try:
                report = await self.presence(neighbour, node, timeout)
            except (TimeoutError, TopoError, OSError):
                continue
            beat = JoinedBeat(
                state=str(report.get("state", "never")),
                via=via,
                since=report.get("since"),
                rtt_ms=report.get("rtt_ms"),
                remote=str(report.get("remote", "")),
            )
            if beat.state == "up":
                return beat
            seen.append(beat)
        if not seen:
            return JoinedBeat(state="unknown")
        return max(seen, key=lambda beat: beat.since or 0)

    async def _client(self, node: NodeState, url: str, timeout: float) -> NodeClient:
        # One connection per node even when two callers want it at once (a node's own
        # heartbeat and a joined neighbour's presence): the loser would be orphaned and closed.
        async with self._connecting.setdefault(node.name, asyncio.Lock()):
            return await self._connect(node, url, timeout)

    async def _connect(self, node: NodeState, url: str, timeout: float) -> NodeClient:
        current = self._open.get(node.name)
        if current is not None and current.url == url:
            return current.client
        self._drop_aside(node.name)
        from codebolt_topo.client import NodeClient  # here: a one-shot prober may never need it

        stack = contextlib.AsyncExitStack()
        # No WebSocket pings: the heartbeat is the liveness check. The close waits at most the
        # heartbeat timeout (websockets then aborts the connection).
        client = await stack.enter_async_context(
            NodeClient.connect(
                url,
                node.admin_token,
                name=node.name,
                keepalive=(None, timeout),
                ca=node.pinned_ca,
            )
        )
        self._open[node.name] = _Open(url=url, stack=stack, client=client)
        return client

    def _drop_aside(self, name: str) -> None:
        """Close ``name``'s connection beside the caller (see the module docstring)."""
        current = self._open.pop(name, None)
        if current is not None:
            task = asyncio.ensure_future(self._aclose(current))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _aclose(current: _Open) -> None:
        with contextlib.suppress(Exception):
            await current.stack.aclose()

    async def drop(self, name: str) -> None:
        current = self._open.pop(name, None)
        if current is not None:
            await self._aclose(current)

    async def close(self) -> None:
        """Close every connection (each waits at most its heartbeat timeout), at once."""
        opened, self._open = list(self._open.values()), {}
        await asyncio.gather(*(self._aclose(current) for current in opened), *self._closing)
