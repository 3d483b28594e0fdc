"""Next hops and the persistent links that reach them.

:class:`Router` knows this node's outgoing peers and routes (from the latest ``RuntimeConfig``)
and owns one :class:`~codebolt_topo.wire.link.Link` per peer: opened on first use, shared by
every request, replaced on the next use after it failed. Deciding *where* targets go is pure
(:meth:`Router.split`, :func:`check_forward`); only :meth:`Router.link` does I/O.

A peer whose edge says ``dial: receiver`` is never dialed: its link is the connection it
opened to this node (:meth:`Router.adopt`, from the server). A request for it waits up to
:data:`DIAL_WAIT` for that connection (a receiver redialing after a drop backs off at most
:data:`~codebolt_topo.node.dialer.MAX_BACKOFF`), then ends ``unreachable``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING

from codebolt_topo.errors import ExecError
from codebolt_topo.wire.config import PeerLink, RuntimeConfig, TlsIdentity
from codebolt_topo.wire.tls import client_context, is_tls_url

if TYPE_CHECKING:
    from codebolt_topo.wire.link import Link  # websockets' client: imported on first use

__all__ = ["DIAL_WAIT", "Router", "check_forward"]

log = logging.getLogger(__name__)
DIAL_WAIT = 10.0
"""Seconds a request waits for a receiver-dialed peer to (re)connect: longer than the dialer's
largest backoff step, so a receiver that lost its link a moment ago is still waited for."""


def check_forward(node: str, hops: int, path: Iterable[str]) -> tuple[str, str] | None:
    """Why this node may not forward a request: (code, message), or None when it may."""
    if hops <= 0:
        return "hop-limit", f"hop limit reached at node {node!r}"
    if node in path:
        return "loop", f"request came back to node {node!r} (path: {' -> '.join(path)})"
    return None


class Router:
    """Routes and links of one node."""

    def __init__(self, node: str, tls: TlsIdentity | None = None) -> None:
        self.node = node
        self.peers: dict[str, PeerLink] = {}
        self.routes: dict[str, list[str]] = {}
        self._links: dict[str, Link] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._arrivals: dict[str, asyncio.Event] = {}
        self._keepalive: tuple[float | None, float] = (None, 20.0)
        self._tls = tls
        self._tls_context: ssl.SSLContext | None = None

    def update(self, runtime: RuntimeConfig) -> list[Link]:
        """Adopt new peers and routes; returns links to close (their peer changed or left)."""
        stale = [
            link
            for name, link in self._links.items()
            if runtime.peers.get(name) != self.peers.get(name)
        ]
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
        spec = self.peers.get(peer)
        if spec is not None and spec.dial == "receiver":
            return await self._dialed_in(peer)
        lock = self._opening.setdefault(peer, asyncio.Lock())
        async with lock:
            link = self._links.get(peer)
            if link is not None and not link.closed:
                return link
            spec = self.peers.get(peer)
            if spec is None:
                raise ExecError(
                    f"node {self.node!r} has no peer {peer!r}",
                    node=peer,
                    hop=self.node,
                    code="unreachable",
                )
            from codebolt_topo.wire.link import Link

            assert spec.url is not None, "a peer this node dials has a url (the planner's)"
            link = await Link.open(
                spec.url, spec.token, peer, self._keepalive, self._context_for(spec)
            )
            self._links[peer] = link
            log.info("link %s -> %s open", self.node, peer)
            return link

    def _context_for(self, spec: PeerLink) -> ssl.SSLContext | None:
        """The pinned TLS context for a ``wss://`` peer of this topology (built once), None for
        ``ws://`` and for a peer behind a proxy with a public certificate."""
        if spec.url is None or not is_tls_url(spec.url):
            return None
        if self._tls is None or not spec.pinned:
            return None  # websockets' default: the system's CAs (e2b's proxy, for one)
        if self._tls_context is None:
            self._tls_context = client_context(self._tls.ca, self._tls)
        return self._tls_context

    async def _dialed_in(self, peer: str) -> Link:
        """The link ``peer`` dialed in with, waiting :data:`DIAL_WAIT` for it at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DIAL_WAIT
        while True:
            link = self._links.get(peer)
            if link is not None and not link.closed:
                return link
            arrival = self._arrivals.setdefault(peer, asyncio.Event())
            try:
                await asyncio.wait_for(arrival.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise ExecError(
                    f"node {peer!r} dials in to node {self.node!r} (dial: receiver) and has "
                    f"not connected for {DIAL_WAIT:g} s",
                    node=peer,
                    hop=self.node,
                    code="unreachable",
                ) from None

    def adopt(self, peer: str, link: Link) -> Link | None:
        """``peer`` dialed in: ``link`` is now the way to it. Returns the link it replaces (to
        close: its requests get ``peer-lost`` and their callers resume over the new one)."""
        old = self._links.get(peer)
        self._links[peer] = link
        arrival = self._arrivals.pop(peer, None)
        if arrival is not None:
            arrival.set()
        return old if old is not None and old is not link and not old.closed else None

    def open_links(self) -> list[Link]:
        """Links currently connected."""
        return [link for link in self._links.values() if not link.closed]

    async def close(self) -> None:
        """Close every link (handlers of in-flight requests get ``on_lost``)."""
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
