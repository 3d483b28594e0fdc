"""Sends heartbeats: an ``info`` call to each node over a connection kept open between beats.

Keeping the connection means a beat costs one small round trip, not a TCP and WebSocket
handshake, so a thousand nodes at a 30 s interval is background noise. A failed beat closes the
connection; the next beat opens a fresh one.

A hung node (SIGSTOP, a frozen VM) accepts TCP but never answers, not even a WebSocket close:
closing its connection must not hold up the pass, or one hung node would stall the heartbeats
and restarts of every other node for the transport's close timeout. So the close waits at most
the heartbeat timeout, and runs beside the pass rather than in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from codebolt_topo.client import NodeClient
from codebolt_topo.errors import TopoError
from codebolt_topo.model.state import NodeState

__all__ = ["HeartbeatProber"]


@dataclass
class _Open:
    url: str
    stack: contextlib.AsyncExitStack
    client: NodeClient


class HeartbeatProber:
    """One persistent admin connection per node, used only for heartbeats."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def probe(self, node: NodeState, timeout: float) -> str | None:
        """None when the node answered within ``timeout``; otherwise why it did not."""
        if node.url is None:
            return "no endpoint recorded"
        try:
            client = await asyncio.wait_for(self._client(node, node.url, timeout), timeout)
            await asyncio.wait_for(client.info(), timeout)
        except TimeoutError:
            self._drop_aside(node.name)
            return f"no answer within {timeout:g} s"
        except (TopoError, OSError) as error:
            self._drop_aside(node.name)
            return str(error)
        return None

    async def _client(self, node: NodeState, url: str, timeout: float) -> NodeClient:
        current = self._open.get(node.name)
        if current is not None and current.url == url:
            return current.client
        self._drop_aside(node.name)
        stack = contextlib.AsyncExitStack()
        # No WebSocket pings: the heartbeat is the liveness check. The close waits at most the
        # heartbeat timeout (websockets then aborts the connection).
        client = await stack.enter_async_context(
            NodeClient.connect(url, node.admin_token, name=node.name, keepalive=(None, timeout))
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
