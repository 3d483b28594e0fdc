"""The ProviderServer: the websockets adapter around :class:`~codebolt_topo.node.session.Session`.

It only moves frames: the handshake hook authenticates (``auth.py``), then each connection's
frames go, in order, to its session. No compression (bulk output would crawl), a frame limit that
fits a 256 KiB chunk plus header with room for large control messages, and the ``codebolt.v1``
subprotocol required. Each connection is pinged every ``keepalive_interval`` (read live from the
runtime config): a caller or upstream hop that stops answering is dropped, which detaches its
jobs (they keep running for the caller's resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from codebolt_topo.node.auth import Authenticator
from codebolt_topo.node.core import NodeCore
from codebolt_topo.node.protocol import MAX_MESSAGE_SIZE, SUBPROTOCOL, WRITE_LIMIT
from codebolt_topo.node.session import Session

__all__ = ["start_server"]

log = logging.getLogger(__name__)


async def start_server(core: NodeCore, host: str, port: int) -> Server:
    """Listen on ``host:port`` (0: any free port) and serve ``core``; returns the server."""
    auth = Authenticator(core.launch.admin_token_digest, lambda: core.runtime.accept)

    async def handler(ws: ServerConnection) -> None:
        principal = auth.principal_of(ws)
        if principal is None:  # cannot happen after process_request; refuse defensively
            await ws.close(1008, "unauthenticated")
            return

        async def disconnect() -> None:
            await ws.close(1008, "token revoked")

        session = Session(core, principal, ws.send, disconnect)
        core.sessions.add(session)
        log.debug("connection from %s (%s)", principal, ws.remote_address)
        pinger = asyncio.ensure_future(_keepalive(ws, core))
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    await session.handle_text(frame)
                else:
                    await session.handle_binary(frame)
        except ConnectionClosed:
            pass
        finally:
            pinger.cancel()
            core.sessions.discard(session)
            await session.close()

    return await serve(handler, host, port, process_request=auth,
                       subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                       compression=None, max_size=MAX_MESSAGE_SIZE, write_limit=WRITE_LIMIT,
                       ping_interval=None,
                       server_header=None)


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
                log.warning("connection from %s stopped answering pings; dropping it",
                            ws.remote_address)
                ws.transport.abort()
                return
