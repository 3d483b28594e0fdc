"""Sends heartbeats: an ``info`` call to each node over a connection kept open between beats.

Keeping the connection means a beat costs one small round trip, not a TCP and WebSocket
handshake, so a thousand nodes at a 30 s interval is background noise. A failed beat closes the
connection; the next beat opens a fresh one.
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

    async def probe(self, node: NodeState, timeout: float) -> str | None:
        """None when the node answered within ``timeout``; otherwise why it did not."""
        if node.url is None:
            return "no endpoint recorded"
        try:
            client = await asyncio.wait_for(self._client(node, node.url), timeout)
            await asyncio.wait_for(client.info(), timeout)
        except TimeoutError:
            await self.drop(node.name)
            return f"no answer within {timeout:g} s"
        except (TopoError, OSError) as error:
            await self.drop(node.name)
            return str(error)
        return None

    async def _client(self, node: NodeState, url: str) -> NodeClient:
        current = self._open.get(node.name)
        if current is not None and current.url == url:
            return current.client
        await self.drop(node.name)
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            NodeClient.connect(url, node.admin_token, name=node.name)
        )
        self._open[node.name] = _Open(url=url, stack=stack, client=client)
        return client

    async def drop(self, name: str) -> None:
        current = self._open.pop(name, None)
        if current is not None:
            with contextlib.suppress(Exception):
                await current.stack.aclose()

    async def close(self) -> None:
        for name in list(self._open):
            await self.drop(name)
