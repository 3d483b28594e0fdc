"""One authenticated connection served as a :class:`~codebolt_topo.node.session.Session`,
whichever end opened it: the server hands over what a caller connected with, the dialer
(``node/dialer.py``) what this node opened to a sender of one of its edges. Both carry the
same requests, answered the same way; only who dialed differs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from codebolt_topo.node.session import Session

if TYPE_CHECKING:
    from codebolt_topo.node.core import NodeCore

__all__ = ["serve_session"]

log = logging.getLogger(__name__)


async def serve_session(
    core: NodeCore, principal: str, ws: ServerConnection | ClientConnection
) -> None:
    """Feed every frame of ``ws`` to a new session of ``principal`` until the connection ends;
    then the session detaches from its jobs (they keep running for a resume)."""

    async def disconnect() -> None:
        await ws.close(1008, "token revoked")

    session = Session(core, principal, ws.send, disconnect)
    core.sessions.add(session)
    log.debug("connection from %s (%s)", principal, ws.remote_address)
    try:
        async for frame in ws:
            if isinstance(frame, str):
                await session.handle_text(frame)
            else:
                await session.handle_binary(frame)
    except ConnectionClosed:
        pass
    finally:
        core.sessions.discard(session)
        await session.close()
