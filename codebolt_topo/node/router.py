"""Next hops and the persistent links that reach them.

:class:`Router` knows this node's outgoing peers and routes (from the latest ``RuntimeConfig``)
and owns one :class:`~codebolt_topo.node.link.Link` per peer: opened on first use, shared by
every request, replaced on the next use after it failed. Deciding *where* targets go is pure
(:meth:`Router.split`, :func:`check_forward`); only :meth:`Router.link` does I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from codebolt_topo.errors import ExecError
from codebolt_topo.node.config import PeerLink, RuntimeConfig

if TYPE_CHECKING:
    from codebolt_topo.node.link import Link  # websockets' client: imported on first use

__all__ = ["Router", "check_forward"]

log = logging.getLogger(__name__)


def check_forward(node: str, hops: int, path: Iterable[str]) -> tuple[str, str] | None:
    """Why this node may not forward a request: (code, message), or None when it may."""
    if hops <= 0:
        return "hop-limit", f"hop limit reached at node {node!r}"
    if node in path:
        return "loop", f"request came back to node {node!r} (path: {' -> '.join(path)})"
    return None


class Router:
    """Routes and links of one node."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.peers: dict[str, PeerLink] = {}
        self.routes: dict[str, list[str]] = {}
        self._links: dict[str, Link] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._keepalive: tuple[float | None, float] = (None, 20.0)

    def update(self, runtime: RuntimeConfig) -> list[Link]:
        """Adopt new peers and routes; returns links to close (their peer changed or left)."""
        stale = [link for name, link in self._links.items()
                 if runtime.peers.get(name) != self.peers.get(name)]
        for link in stale:
            del self._links[link.name]
        self._keepalive = (runtime.keepalive_interval, runtime.keepalive_timeout)
        self.peers = dict(runtime.peers)
        self.routes = {dest: list(hops) for dest, hops in runtime.routes.items()}
        return stale

    def candidates(self, target: str) -> list[str]:
        """Next hops to try for ``target``, nearest first; a direct peer is its own route."""
        hops = self.routes.get(target)
        if hops:
            return list(hops)
        return [target] if target in self.peers else []

    @staticmethod
    def split(pending: dict[str, list[str]]) -> dict[str, list[str]]:
        """Group targets by their first remaining candidate: next hop -> targets (in order)."""
        groups: dict[str, list[str]] = {}
        for target, hops in pending.items():
            groups.setdefault(hops[0], []).append(target)
        return groups

    async def link(self, peer: str) -> Link:
        """The open link to ``peer``, connecting if needed (raises TopoError when it cannot)."""
        link = self._links.get(peer)
        if link is not None and not link.closed:
            return link
        lock = self._opening.setdefault(peer, asyncio.Lock())
        async with lock:
            link = self._links.get(peer)
            if link is not None and not link.closed:
                return link
            spec = self.peers.get(peer)
            if spec is None:
                raise ExecError(f"node {self.node!r} has no peer {peer!r}", node=peer,
                                hop=self.node, code="unreachable")
            from codebolt_topo.node.link import Link

            link = await Link.open(spec.url, spec.token, peer, keepalive=self._keepalive)
            self._links[peer] = link
            log.info("link %s -> %s open", self.node, peer)
            return link

    def open_links(self) -> list[Link]:
        """Links currently connected."""
        return [link for link in self._links.values() if not link.closed]

    async def close(self) -> None:
        """Close every link (handlers of in-flight requests get ``on_lost``)."""
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
