"""A node's ``info`` over one plain HTTP request: ``GET /info`` with the admin token.

``codebolt status`` asks every node once and exits. Over a WebSocket that is an upgrade, a
frame each way and a close handshake each way per node, with a connection object, its tasks
and its masks on both ends; at 500 nodes the opening and the closing were 0.5 s and 0.17 s of
a 1.36 s status. One HTTP request that the node answers before any upgrade, and closes,
carries the same answer for about half the work on each side (measured in
``benchmarks/RESULTS.md``). Persistent heartbeats (``status --watch``, ``watch``, the broker)
keep their WebSocket: there a beat is one small frame on an open connection.

This module is the protocol only (bytes in, bytes out, no sockets): the request a caller sends
and the reading of the node's answer. A node too old to know the path answers the request as a
failed WebSocket upgrade (400 or 426): :class:`InfoAnswer` says so, and the caller asks over a
WebSocket instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from codebolt_topo.errors import ProtocolError

__all__ = ["INFO_PATH", "MAX_INFO_ANSWER", "InfoAnswer", "info_request", "read_info_answer"]

INFO_PATH: Final = "/info"
MAX_INFO_ANSWER: Final = 1024 * 1024
"""Most bytes read of an answer (an ``info`` reply is about 1 KiB; ``detail`` is not offered)."""
_NOT_UPGRADED: Final = frozenset({400, 426})
"""What a node that predates ``GET /info`` answers it with: a request without ``Upgrade``."""


def info_request(host: str, token: str) -> bytes:
    """The whole request: the token as on a WebSocket handshake, the connection closed after."""
    if any(c in host + token for c in "\r\n"):
        raise ValueError("a host or token with a line break cannot go in a request header")
    return (
        f"GET {INFO_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class InfoAnswer:
    """A node's answer: ``info`` when it gave one (200), else its status and reason."""

    status: int
    info: dict[str, Any] | None = None
    reason: str = ""

    @property
    def predates(self) -> bool:
        """The node does not know ``GET /info`` (it took it for a WebSocket upgrade)."""
        return self.status in _NOT_UPGRADED


def read_info_answer(raw: bytes) -> InfoAnswer:
    """Read the node's whole answer (up to the close). A 200 must carry a JSON object; any
    other status keeps the body's first line as the reason (what the node said: "Missing or
    unknown token")."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ProtocolError(f"incomplete HTTP answer ({len(raw)} bytes, no end of headers)")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(parts[1])
    if status != 200:
        text = body.decode("utf-8", "replace").strip().splitlines()
        return InfoAnswer(status, reason=text[0] if text else (parts[2] if len(parts) > 2 else ""))
    try:
        info = json.loads(body)
    except ValueError as error:
        raise ProtocolError(f"info answer is not JSON: {error}") from None
    if not isinstance(info, dict):
        raise ProtocolError(f"info answer is a JSON {type(info).__name__}, not an object")
    return InfoAnswer(status, info=info)
