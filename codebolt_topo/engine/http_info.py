"""One node's ``info`` over one HTTP request (``wire/probe.py``): the I/O, and when it applies.

A one-shot ``codebolt status`` takes each node's heartbeat this way. It applies only where no
proxy can be in the way, a loopback URL (local nodes, docker nodes' published ports, the local
ends of tunnels); elsewhere, and with a node too old to know ``GET /info``, the caller asks over
a WebSocket as before. This module imports neither websockets nor the client package, so a cold
``status`` does not pay for them.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

from codebolt_topo.errors import ConfigError, ExecError, cannot_reach
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.wire.probe import MAX_INFO_ANSWER, InfoAnswer, info_request, read_info_answer

__all__ = ["ask_info", "info_over_http"]


def info_over_http(url: str) -> bool:
    """Whether ``url`` can be asked with ``GET /info`` directly: a ws/wss loopback URL."""
    parts = urlsplit(url)
    return parts.scheme in ("ws", "wss") and is_loopback(parts.hostname or "")


async def ask_info(
    url: str, token: str, *, name: str, tls: ssl.SSLContext | None = None
) -> InfoAnswer:
    """Ask the node at ``url`` for its ``info``; raises like a WebSocket connection would
    (``ConfigError`` for a refused token, ``ExecError`` ``unreachable`` otherwise). An answer
    of a node that predates ``GET /info`` is returned (``predates``): the caller falls back.
    The caller bounds the time (``asyncio.wait_for``)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    who = f"node {name!r} at {url}"
    if port is None:
        raise ConfigError(f"invalid node URL {url!r}: no port")
    secure: dict[str, Any] = {"ssl": tls, "server_hostname": name} if tls is not None else {}
    try:
        reader, writer = await asyncio.open_connection(host, port, **secure)
    except OSError as exc:  # a certificate the topology did not issue to ``name`` too
        raise cannot_reach(who, exc, name) from None
    try:
        writer.write(info_request(parts.netloc, token))
        raw = b""  # up to the node's close, at most MAX_INFO_ANSWER
        while len(raw) < MAX_INFO_ANSWER and (
            more := await reader.read(MAX_INFO_ANSWER - len(raw))
        ):
            raw += more
    except OSError as exc:
        raise cannot_reach(who, exc, name) from None
    finally:
        writer.close()
    answer = read_info_answer(raw)
    if answer.status == 401:
        raise ConfigError(f"{who} refused the token (401)")
    if answer.status == 403:
        raise ConfigError(f"{who} refused the request (403): {answer.reason}")
    if answer.info is None and not answer.predates:
        raise ExecError(
            f"{who} answered HTTP {answer.status}: {answer.reason}", node=name, code="unreachable"
        )
    return answer
