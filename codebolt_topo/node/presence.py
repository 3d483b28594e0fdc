"""Which peers hold a connection to this node now, and how the last one ended.

A node that joined from its own machine (``provider: joined``) cannot be dialed, so the
orchestrator cannot send it heartbeats: its neighbours can. Every connection a peer opened to
this node (as the sender of an edge, or as a receiver dialing in) is recorded here; the
``presence`` request (admin only) reports a peer as ``up`` (with the round trip of a ping
over the very link the peer opened: its heartbeat), ``left`` (its last connection ended with a
clean close: the daemon stopped, Ctrl-C on ``codebolt join``, ``codebolt leave``), ``lost``
(ended without one: a cut link, a machine asleep) or ``never``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Presence"]

log = logging.getLogger(__name__)

#: Close codes of a peer that went away on purpose (normal closure, going away).
_CLEAN = frozenset({1000, 1001})


def _left(connection: _Connection) -> bool:
    """Whether the peer closed ``connection`` on purpose: it sent the first close frame, with
    a normal code. One this node closed (a revoked token, a rewiring) or that broke is not."""
    closing = connection.protocol
    received = closing.close_rcvd
    return bool(received is not None and received.code in _CLEAN and closing.close_rcvd_then_sent)


class _Closing(Protocol):
    @property
    def close_rcvd(self) -> Any: ...
    @property
    def close_sent(self) -> Any: ...
    @property
    def close_rcvd_then_sent(self) -> bool | None: ...


class _Connection(Protocol):
    @property
    def protocol(self) -> _Closing: ...
    @property
    def remote_address(self) -> Any: ...

    async def ping(self) -> Any: ...


@dataclass
class _Peer:
    open: list[_Connection] = field(default_factory=list)
    since: float | None = None
    ended: float | None = None
    clean: bool = False
    remote: str = ""


class Presence:
    """The connections each peer holds to node ``name`` now, and how its last one ended."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._peers: dict[str, _Peer] = {}

    def opened(self, peer: str, connection: _Connection) -> None:
        entry = self._peers.setdefault(peer, _Peer())
        if not entry.open:
            entry.since = time.time()
        entry.open.append(connection)
        address = connection.remote_address
        entry.remote = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else ""

    def closed(self, peer: str, connection: _Connection) -> None:
        entry = self._peers.get(peer)
        if entry is None or connection not in entry.open:
            return
        entry.open.remove(connection)
        left = _left(connection)
        received, sent = connection.protocol.close_rcvd, connection.protocol.close_sent
        log.info(
            "%s: a connection of %s ended (%s; received %s, sent %s)",
            self._name,
            peer,
            "it left" if left else "not closed by it",
            received.code if received is not None else None,
            sent.code if sent is not None else None,
        )
        if not entry.open:
            entry.ended = time.time()
            entry.clean = left

    async def report(self, peer: str, timeout: float) -> dict[str, Any]:
        """The ``presence`` answer's fields for ``peer``: its state, since when, from where,
        and for an ``up`` peer the round trip of a ping over its connection (milliseconds; None
        when the ping went unanswered within ``timeout``: connected but not answering)."""
        entry = self._peers.get(peer)
        if entry is None:
            return {"state": "never"}
        if not entry.open:
            return {
                "state": "left" if entry.clean else "lost",
                "since": entry.ended,
                "remote": entry.remote,
            }
        reply: dict[str, Any] = {"state": "up", "since": entry.since, "remote": entry.remote}
        started = time.perf_counter()
        try:
            pong = await entry.open[-1].ping()
            await asyncio.wait_for(pong, timeout)
        except Exception:  # closed meanwhile, or no pong in time
            reply["rtt_ms"] = None
        else:
            reply["rtt_ms"] = round((time.perf_counter() - started) * 1e3, 3)
        return reply
