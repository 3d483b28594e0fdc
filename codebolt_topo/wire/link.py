"""One outgoing, multiplexed connection to a node (what a hop and a client both hold).

:class:`Link` opens a WebSocket with the bearer token, then runs one reader task that hands
every incoming frame to the :class:`Handler` of the request it belongs to: by request id until
``started`` announces a channel, by channel afterwards. Any number of requests share the link.
When the connection ends, every handler still registered gets :meth:`Handler.on_lost` exactly
once, and the link is closed for good: the owner opens a new one on next use.

The node's handshake answer tells its request clock (``Codebolt-Clock``); the link keeps it as
a :class:`~codebolt_topo.wire.clock.PeerClock` and stamps every ``exec`` it sends with when
it was issued on that clock, so the node can refuse a frame resent later (docs/protocol.md).

A link is the *sending* side of a connection, whichever end opened it: a node whose edge's
receiver dials in wraps the accepted server connection in a Link too (the receiver told its
clock in its request), and sends work over it exactly as over one it opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from codebolt_topo.errors import ConfigError, ExecError, ProtocolError, TopoError, cannot_reach
from codebolt_topo.wire.clock import CLOCK_REFRESH, PeerClock
from codebolt_topo.wire.codec import decode, encode
from codebolt_topo.wire.frames import HEADER, MAX_MESSAGE_SIZE, WRITE_LIMIT
from codebolt_topo.wire.handshake import CLOCK_HEADER, SUBPROTOCOL

__all__ = ["Handler", "Link", "open_connection"]

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT = 5.0
_ANSWERS = frozenset({"configured", "info", "presence", "synced"})
"""Messages that answer a :meth:`Link.call` (matched by ``id``), not a request's handler."""


def _proxy_for(url: str) -> Literal[True] | None:
    """Whether to look for a proxy for ``url``: never for a loopback address (a node here, a
    tunnel's or relay's local end), else as the environment says (HTTPS_PROXY, NO_PROXY...).

    websockets sends every connection through the environment's proxy by default; a developer
    with HTTPS_PROXY set and no NO_PROXY for 127.0.0.1 saw every exec to a local node fail
    with the proxy's address, and the lookup cost ~0.5 ms per connection."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return None
    try:
        return None if ipaddress.ip_address(host).is_loopback else True
    except ValueError:
        return True  # a name: the environment decides


class Handler(Protocol):
    """Receives what a link gets for one request. Methods run on the link's reader task, in
    arrival order; awaiting in them applies backpressure to the whole link."""

    async def on_control(self, message: dict[str, Any]) -> None:
        """``started``, ``notify``, ``exit`` or ``error`` for this request."""

    async def on_data(self, frame: bytes) -> None:
        """A binary frame on one of this request's channels (header included)."""

    async def on_done(self) -> None:
        """``done``: nothing more will arrive for this request."""

    async def on_lost(self, reason: str) -> None:
        """The connection ended before ``done``."""


async def open_connection(
    url: str,
    token: str,
    name: str | None = None,
    keepalive: tuple[float | None, float] = (None, 20.0),
    *,
    tls: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> ClientConnection:
    """Open a protocol connection, translating failures into the project's errors.

    ``keepalive`` is (ping interval or None, pong timeout) in seconds: a peer that stops
    answering pings is a lost connection (``peer-lost``), even when TCP never says so.
    ``tls`` (a ``wss://`` URL) is a pinned context from ``wire/tls.py``: the far end must hold
    a certificate for node ``name``. ``headers`` go with the upgrade request (a dial's).

    401/403 become :class:`ConfigError` (the token or the client is wrong, retrying won't help);
    anything else that prevents the connection becomes :class:`ExecError` code ``unreachable``.
    """
    who = f"node {name!r} at {url}" if name else f"node at {url}"
    secure: dict[str, Any] = (
        {"ssl": tls, "server_hostname": name} if tls is not None and name else {}
    )
    try:
        return await connect(
            url,
            **secure,
            proxy=_proxy_for(url),
            additional_headers={"Authorization": f"Bearer {token}", **(headers or {})},
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression=None,
            max_size=MAX_MESSAGE_SIZE,
            write_limit=WRITE_LIMIT,
            open_timeout=_CONNECT_TIMEOUT,
            ping_interval=keepalive[0],
            ping_timeout=keepalive[1],
            close_timeout=keepalive[1],
            user_agent_header=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 401:
            raise ConfigError(f"{who} refused the token (401)") from None
        if status == 403:
            raise ConfigError(f"{who} refused the connection (403)") from None
        raise ExecError(f"{who} answered HTTP {status}", node=name, code="unreachable") from None
    except InvalidURI as exc:
        raise ConfigError(f"invalid node URL {url!r}: {exc}") from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:  # a certificate error is an OSError
        raise cannot_reach(who, exc, name) from None


class Link:
    """A connected, multiplexed link. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(
        self, ws: ClientConnection | ServerConnection, name: str, clock: str | None = None
    ) -> None:
        self.name = name
        self.ws = ws
        self._by_id: dict[str, Handler] = {}
        self._by_ch: dict[int, Handler] = {}
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._progress: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self.clock = _peer_clock(clock, name)
        """The node's request clock (``clock``: the header its handshake told), None when it
        did not tell one."""
        self._relearning: asyncio.Future[None] | None = None
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        token: str,
        name: str,
        keepalive: tuple[float | None, float] = (None, 20.0),
        tls: ssl.SSLContext | None = None,
    ) -> Link:
        """Connect to ``url`` presenting ``token``; see :func:`open_connection` for errors."""
        ws = await open_connection(url, token, name, keepalive, tls=tls)
        told = ws.response.headers.get(CLOCK_HEADER) if ws.response is not None else None
        return cls(ws, name, told)

    @property
    def closed(self) -> bool:
        """True once the connection ended; a closed link never reopens."""
        return self._closed

    def fresh_id(self, request_id: str) -> str:
        """``request_id`` if no live request on this link uses it, else a unique variant."""
        candidate = request_id
        while candidate in self._by_id:
            candidate = f"{request_id}~{next(self._ids)}"
        return candidate

    async def request(self, message: dict[str, Any], handler: Handler, age: float = 0.0) -> None:
        """Register ``handler`` for ``message['id']`` and send the message (an ``exec`` or
        ``attach``). An ``exec`` goes stamped ``issued`` on the node's clock, ``age`` seconds
        ago (what a forwarding hop carries over; 0 where the request is issued)."""
        if self._closed:
            raise ExecError(f"link to {self.name!r} is closed", node=self.name, code="peer-lost")
        if message["t"] == "exec" and self.clock is not None:
            if self.clock.older_than(CLOCK_REFRESH):
                await self._relearn_clock()
            message = {**message, "issued": self.clock.stamp(age)}
        self._by_id[message["id"]] = handler
        try:
            await self.ws.send(encode(message))
        except ConnectionClosed:
            self._by_id.pop(message["id"], None)
            raise ExecError(
                f"link to {self.name!r} was lost", node=self.name, code="peer-lost"
            ) from None

    async def _relearn_clock(self) -> None:
        """Learn the node's clock again from an ``info`` reply (one at a time per link); the
        old estimate stays when the node does not answer one."""
        if self._relearning is None or self._relearning.done():
            self._relearning = asyncio.ensure_future(self._ask_clock())
        await asyncio.shield(self._relearning)

    async def _ask_clock(self) -> None:
        try:
            header = (await self.call({"t": "info"})).get("clock")
            if isinstance(header, str):
                self.clock = PeerClock(header)
        except (TopoError, ProtocolError) as exc:
            log.debug("link to %s: clock not relearned: %s", self.name, exc)

    def forget(self, request_id: str) -> None:
        """Stop delivering anything for ``request_id`` (its caller went away)."""
        if self._by_id.pop(request_id, None) is not None:
            for ch in [c for c, h in self._by_ch.items() if h not in self._by_id.values()]:
                del self._by_ch[ch]

    async def call(
        self,
        message: dict[str, Any],
        on_notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send an ``info``, ``configure``, ``presence`` or ``sync`` and wait for its answer
        (matched by ``id``); ``notify`` frames carrying the call's id on the way go to
        ``on_notify``."""
        call_id = f"call-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        if on_notify is not None:
            self._progress[call_id] = on_notify
        try:
            await self.send(encode({**message, "id": call_id}))
            return await future
        finally:
            self._calls.pop(call_id, None)
            self._progress.pop(call_id, None)

    async def send(self, data: str | bytes) -> None:
        """Send one frame; a lost connection raises ExecError code ``peer-lost``."""
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            raise ExecError(
                f"link to {self.name!r} was lost", node=self.name, code="peer-lost"
            ) from None

    async def close(self) -> None:
        """Close the connection and wait for the reader to finish notifying handlers."""
        await self.ws.close()
        await self._reader

    async def wait_closed(self) -> None:
        """Return once the connection ended and every handler was told."""
        await asyncio.shield(self._reader)

    async def _read(self) -> None:
        reason = "connection closed"
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    handler = (
                        self._by_ch.get(HEADER.unpack_from(frame)[1])
                        if len(frame) >= HEADER.size
                        else None
                    )
                    if handler is not None:
                        await handler.on_data(frame)
                else:
                    await self._dispatch(decode(frame))
        except ConnectionClosed as exc:
            reason = str(exc)
        except ProtocolError as exc:
            reason = f"protocol error from {self.name!r}: {exc}"
            log.warning("%s", reason)
            await self.ws.close(1002, "protocol error")
        finally:
            self._closed = True
            handlers = list(dict.fromkeys(self._by_id.values()))
            self._by_id.clear()
            self._by_ch.clear()
            for future in self._calls.values():
                if not future.done():
                    future.set_exception(
                        ExecError(
                            f"link to {self.name!r} lost: {reason}",
                            node=self.name,
                            code="peer-lost",
                        )
                    )
            for handler in handlers:
                await handler.on_lost(reason)

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        ch = msg.get("ch")
        if kind in _ANSWERS or (kind == "error" and self._answers_a_call(msg)):
            self._answer(msg)
            return
        if (
            kind == "notify"
            and ch is None
            and (listener := self._progress.get(msg.get("id") or ""))
        ):
            listener(msg)
            return
        if kind == "started":
            handler = self._by_id.get(msg["id"])
            if handler is not None:
                self._by_ch[msg["ch"]] = handler
        elif kind == "done":
            handler = self._by_id.pop(msg["id"], None)
            if handler is not None:
                await handler.on_done()
            return
        elif ch is not None:
            handler = (
                self._by_ch.pop(ch, None) if kind in ("exit", "error") else (self._by_ch.get(ch))
            )
        else:
            handler = self._by_id.get(msg.get("id") or "")
        if handler is not None:
            await handler.on_control(msg)
        if msg.get("done") and kind in ("exit", "error"):  # the request's last message
            handler = self._by_id.pop(msg.get("id") or "", None)
            if handler is not None:
                await handler.on_done()

    def _answers_a_call(self, error: dict[str, Any]) -> bool:
        """Whether ``error`` answers a :meth:`call`: it names the call's id, or it refuses a
        frame the node could not read (``bad-request`` with ``id`` null) while one call is
        pending. A node that predates a message (``sync``) refuses it as an unknown type
        before it can read its id; without this its caller would wait forever."""
        request_id = error.get("id")
        if request_id is not None:
            return request_id in self._calls
        return error.get("code") == "bad-request" and len(self._calls) == 1

    def _answer(self, msg: dict[str, Any]) -> None:
        future = self._calls.get(msg.get("id") or "")
        if future is None:
            if len(self._calls) != 1:
                return
            future = next(iter(self._calls.values()))  # an answer without id: the only call
        if future.done():
            return
        if msg["t"] == "error":
            future.set_exception(_call_error(msg))
        else:
            future.set_result(msg)


def _call_error(msg: dict[str, Any]) -> TopoError:
    return ExecError(msg["message"], node=msg.get("node"), hop=msg.get("hop"), code=msg["code"])


def _peer_clock(header: str | None, name: str) -> PeerClock | None:
    if header is None:
        return None
    try:
        return PeerClock(header)
    except ProtocolError as exc:
        log.warning("node %r: %s; its exec requests go unstamped", name, exc)
        return None
