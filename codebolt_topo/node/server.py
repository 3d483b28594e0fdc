"""The ProviderServer: the websockets adapter around :class:`~codebolt_topo.node.session.Session`.

It only moves frames: the handshake hook authenticates (``auth.py``), then each connection's
frames go, in order, to its session. No compression (bulk output would crawl), a frame limit that
fits a 256 KiB chunk plus header with room for large control messages, and the ``codebolt.v3``
subprotocol required. Each connection is pinged every ``keepalive_interval`` (read live from the
runtime config): a caller or upstream hop that stops answering is dropped, which detaches its
jobs (they keep running for the caller's resume). Every accepted handshake tells the node's
request clock in the ``Codebolt-Clock`` response header (see ``NodeClock`` in ``protocol.py``).

A connection dialed in by the receiver of one of this node's edges (``dial: receiver``) is not
served as a session: the node's 101 answer proves it holds the edge's work token
(``Codebolt-Proof``), and the connection becomes the router's link to that receiver, carrying
this node's work to it. With a :class:`~codebolt_topo.wire.config.TlsIdentity` the server
speaks TLS only, when the identity says so (``serve``: ``wire/tls.py``). Two plain HTTP
requests are answered before any upgrade: ``GET /join`` (a joining node, TLS only) and
``GET /info`` (the admin's one-request look at this node, ``wire/probe.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from codebolt_topo.node.core import NodeCore
from codebolt_topo.node.joins import JoinDesk
from codebolt_topo.node.security.auth import ADMIN, Authenticator
from codebolt_topo.node.serving import serve_session
from codebolt_topo.wire.dialing import proof_from_token
from codebolt_topo.wire.frames import MAX_MESSAGE_SIZE, WRITE_LIMIT
from codebolt_topo.wire.handshake import CLOCK_HEADER, NONCE_HEADER, PROOF_HEADER, SUBPROTOCOL
from codebolt_topo.wire.joining import JOIN_PATH
from codebolt_topo.wire.link import Link
from codebolt_topo.wire.probe import INFO_PATH
from codebolt_topo.wire.tls import server_context

__all__ = ["start_server"]

log = logging.getLogger(__name__)


async def start_server(core: NodeCore, host: str, port: int) -> Server:
    """Listen on ``host:port`` (0: any free port) and serve ``core``; returns the server."""
    identity = core.launch.tls
    tls = identity if identity is not None and identity.serve else None
    auth = Authenticator(
        core.launch.admin_token_digest,
        lambda: core.runtime.accept,
        lambda: {
            name: peer.dialer_digest
            for name, peer in core.runtime.peers.items()
            if peer.dial == "receiver"
        },
        tls=tls is not None,
    )
    desk = JoinDesk(core.name, lambda: core.runtime.joins, Path(core.launch.state_dir))

    def admit(ws: ServerConnection, request: Request) -> Response | None:
        """A joining node's one request (TLS servers only: its answer is a launch config),
        else the WebSocket handshake's authentication. Every one of them is a GET: websockets
        hands this hook any method, and would refuse only an upgrade that is not."""
        if request.method != "GET":
            response = ws.respond(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET is served here\n")
            response.headers["Allow"] = "GET"
            return response
        if request.path == JOIN_PATH and tls is not None:
            return desk.respond(ws, request)
        if request.path == INFO_PATH:
            return _info_answer(core, auth, ws, request)
        return auth(ws, request)

    def answer(ws: ServerConnection, request: Request, response: Response) -> None:
        if response.status_code != 101:
            return
        response.headers[CLOCK_HEADER] = core.clock.header()
        knock = auth.peek(ws)
        if knock is None:
            return
        peer = core.runtime.peers.get(knock.principal)
        if knock.dialed and peer is not None:
            nonce = request.headers[NONCE_HEADER]
            response.headers[PROOF_HEADER] = proof_from_token(
                peer.token, core.name, knock.principal, nonce
            )

    async def handler(ws: ServerConnection) -> None:
        knock = auth.knock_of(ws)
        if knock is None:  # cannot happen after process_request; refuse defensively
            await ws.close(1008, "unauthenticated")
            return
        pinger = asyncio.ensure_future(_keepalive(ws, core))
        peer = knock.principal if knock.principal != ADMIN else None
        if peer is not None:
            core.presence.opened(peer, ws)
        try:
            if knock.dialed:
                await _carry_work(core, knock.principal, ws)
            else:
                await serve_session(core, knock.principal, ws)
        finally:
            pinger.cancel()
            if peer is not None:
                core.presence.closed(peer, ws)

    return await serve(
        handler,
        host,
        port,
        ssl=server_context(tls) if tls is not None else None,
        process_request=admit,
        process_response=answer,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        compression=None,
        max_size=MAX_MESSAGE_SIZE,
        write_limit=WRITE_LIMIT,
        ping_interval=None,
        server_header=None,
    )


def _info_answer(
    core: NodeCore, auth: Authenticator, ws: ServerConnection, request: Request
) -> Response:
    """``GET /info`` (``wire/probe.py``): the admin's one-request look at this node, answered
    before any upgrade and closed; a peer's token is refused (403), as is a dialer's."""
    refused = auth(ws, request)
    knock = auth.knock_of(ws)
    if refused is not None:
        return refused
    if knock is None or knock.dialed or knock.principal != ADMIN:
        return ws.respond(HTTPStatus.FORBIDDEN, "GET /info takes the admin token\n")
    response = ws.respond(HTTPStatus.OK, json.dumps(core.info()) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _carry_work(core: NodeCore, receiver: str, ws: ServerConnection) -> None:
    """A receiver dialed in: its connection is this node's link to it until it ends."""
    assert ws.request is not None
    link = Link(ws, receiver, ws.request.headers.get(CLOCK_HEADER))
    replaced = core.router.adopt(receiver, link)
    if replaced is not None:
        await replaced.close()
    log.info("link %s -> %s open (dialed by %s)", core.name, receiver, receiver)
    await link.wait_closed()
    log.info("link %s -> %s closed", core.name, receiver)


async def _keepalive(ws: ServerConnection, core: NodeCore) -> None:
    """Ping ``ws`` while it is open; abort it when a pong does not come back in time."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            interval = core.runtime.keepalive_interval
            await asyncio.sleep(interval or 1.0)
            if interval is None:
                continue
            pong = await ws.ping()
            try:
                await asyncio.wait_for(pong, core.runtime.keepalive_timeout)
            except TimeoutError:
                log.warning(
                    "connection from %s stopped answering pings; dropping it", ws.remote_address
                )
                ws.transport.abort()
                return
