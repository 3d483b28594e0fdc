"""A local stand-in for e2b that the real ``e2b`` SDK talks to over HTTP.

Two servers on loopback, run by :class:`StandIn` on an event loop of their own thread:

* ``api``: uvicorn serving the control plane (:mod:`.control`) and envd (:mod:`.envd`); a
  request carrying ``E2b-Sandbox-Id`` is for envd, anything else for the control plane.
* ``proxy``: the sandbox proxy (:mod:`.proxy`), what ``E2B_SANDBOX_URL`` points at.

Point the SDK at it with ``StandIn.environ()`` (``E2B_API_URL``, ``E2B_SANDBOX_URL``,
``E2B_API_KEY``): the SDK then runs its normal, non-debug code path (REST create, envd RPC,
file upload) against these servers. Sandboxes are directories with real local processes
(:mod:`.sandboxes`); templates are named environments given to the constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from .control import ControlPlane, Receive, Scope, Send
from .envd import Envd
from .proxy import SandboxProxy
from .sandboxes import Sandboxes

__all__ = ["DOMAIN", "StandIn"]

DOMAIN = "e2b.standin"


class _App:
    def __init__(self, control: ControlPlane, envd: Envd) -> None:
        self.control = control
        self.envd = envd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if any(name.lower() == b"e2b-sandbox-id" for name, _ in scope["headers"]):
            await self.envd(scope, receive, send)
        else:
            await self.control(scope, receive, send)


def _listen() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (proto 0
    # left Nagle on, and every relayed round trip waited ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class StandIn:
    """e2b's control plane, envd and sandbox proxy on loopback, for one API key."""

    def __init__(self, api_key: str, templates: dict[str, dict[str, str]]) -> None:
        self.api_key = api_key
        self.sandboxes = Sandboxes(templates, DOMAIN)
        self.control = ControlPlane(self.sandboxes, api_key)
        self._api_sock = _listen()
        self._proxy_sock = _listen()
        self.api_url = f"http://127.0.0.1:{self._api_sock.getsockname()[1]}"
        self.proxy_url = f"http://127.0.0.1:{self._proxy_sock.getsockname()[1]}"
        self.proxy = SandboxProxy(self.sandboxes, self._api_sock.getsockname()[1])
        for env in templates.values():  # sandbox nodes reach each other through the proxy
            env.setdefault("ws_proxy", self.proxy_url)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._run, name="e2b-standin", daemon=True)

    def environ(self) -> dict[str, str]:
        """What the SDK (and the provider's relay) need to use this stand-in."""
        return {
            "E2B_API_KEY": self.api_key,
            "E2B_API_URL": self.api_url,
            "E2B_SANDBOX_URL": self.proxy_url,
            "E2B_DOMAIN": DOMAIN,
        }

    def running(self) -> list[Any]:
        return [s for s in self.sandboxes.by_id.values() if s.state == "running"]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        config = uvicorn.Config(
            _App(self.control, Envd(self.sandboxes)),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            # idle connections are the client's to close (the SDK's pool
            # keeps them 300 s): a server closing first races with reuse
            timeout_keep_alive=600,
        )
        self._server = uvicorn.Server(config)  # off the main thread: installs no signal handlers
        proxy = await asyncio.start_server(self.proxy.handle, sock=self._proxy_sock)
        reaper = asyncio.create_task(self._reap())
        self._ready.set()
        try:
            await self._server.serve(sockets=[self._api_sock])
        finally:
            reaper.cancel()
            proxy.close()
            self.sandboxes.close()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.sandboxes.expire()

    def start(self) -> StandIn:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
        self._loop.close()
        self._api_sock.close()
        self._proxy_sock.close()

    @contextlib.contextmanager
    def running_context(self) -> Iterator[StandIn]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
