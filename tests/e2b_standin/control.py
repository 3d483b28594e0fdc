"""The control plane's REST endpoints the SDK calls, as a plain ASGI app.

``POST /v2/sandboxes`` (create), ``GET /v2/sandboxes`` (list, filtered by metadata),
``POST /v2/sandboxes/{id}/connect`` (connect to a running one), ``GET /sandboxes/{id}`` (info),
``DELETE /sandboxes/{id}`` (kill) and ``POST /sandboxes/{id}/timeout``: the JSON shapes are
those of the SDK's generated models (``e2b.api.client.models``). Every request must carry
``X-API-KEY`` equal to the stand-in's key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from .sandboxes import Sandbox, Sandboxes

__all__ = ["ENVD_VERSION", "ControlPlane", "receive_body", "respond"]

ENVD_VERSION = "0.6.7"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def receive_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def respond(
    send: Send, status: int, payload: Any = None, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = b"" if payload is None else json.dumps(payload).encode()
    all_headers = [(b"content-type", b"application/json"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


class ControlPlane:
    """``api.e2b.app`` for the sandboxes of one stand-in."""

    def __init__(self, sandboxes: Sandboxes, api_key: str) -> None:
        self.sandboxes = sandboxes
        self.api_key = api_key
        #: (method, path) of every request, for tests (never the key).
        self.calls: list[tuple[str, str]] = []

    def _detail(self, sandbox: Sandbox, *, listed: bool = False) -> dict[str, Any]:
        detail = {
            "templateID": sandbox.template,
            "sandboxID": sandbox.id,
            "clientID": "standin",
            "startedAt": _iso(sandbox.started_at),
            "endAt": _iso(sandbox.end_at),
            "cpuCount": 2,
            "memoryMB": 512,
            "diskSizeMB": 1024,
            "state": "running",
            "envdVersion": ENVD_VERSION,
            "metadata": sandbox.metadata,
            "domain": self.sandboxes.domain,
        }
        if not listed:
            detail["envdAccessToken"] = sandbox.access_token
        return detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        self.calls.append((method, path))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("x-api-key") != self.api_key:
            await respond(send, 401, {"code": 401, "message": "Invalid API key"})
            return
        self.sandboxes.expire()
        body = await receive_body(receive)
        if path == "/v2/sandboxes" and method == "POST":
            await self._create(send, json.loads(body or b"{}"))
        elif path == "/v2/sandboxes" and method == "GET":
            await self._list(send, parse_qs(scope["query_string"].decode()))
        elif (match := re.fullmatch(r"/v2/sandboxes/([^/]+)/connect", path)) and method == "POST":
            await self._connect(send, match.group(1))
        elif match := re.fullmatch(r"/sandboxes/([^/]+)(/timeout)?", path):
            await self._one(
                send, method, match.group(1), bool(match.group(2)), json.loads(body or b"{}")
            )
        else:
            await respond(send, 404, {"code": 404, "message": f"no route {method} {path}"})

    async def _create(self, send: Send, request: dict[str, Any]) -> None:
        template = request.get("templateID", "base")
        try:
            sandbox = self.sandboxes.create(
                template,
                int(request.get("timeout", 15)),
                request.get("metadata") or {},
                request.get("envVars") or {},
            )
        except KeyError:
            await respond(send, 404, {"code": 404, "message": f"template '{template}' not found"})
            return
        await respond(send, 201, self._created(sandbox))

    def _created(self, sandbox: Sandbox) -> dict[str, Any]:
        """What create and connect answer: how the SDK reaches the sandbox's envd."""
        return {
            "templateID": sandbox.template,
            "sandboxID": sandbox.id,
            "clientID": "standin",
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": sandbox.access_token,
            "domain": self.sandboxes.domain,
        }

    async def _connect(self, send: Send, sandbox_id: str) -> None:
        sandbox = self.sandboxes.running(sandbox_id)
        if sandbox is None:
            await respond(send, 404, {"code": 404, "message": f"sandbox {sandbox_id} not found"})
            return
        await respond(send, 200, self._created(sandbox))

    async def _list(self, send: Send, query: dict[str, list[str]]) -> None:
        wanted: dict[str, str] = {}
        for encoded in query.get("metadata", []):
            for key, values in parse_qs(encoded).items():
                wanted[unquote(key)] = unquote(values[-1])
        rows = [
            self._detail(sandbox, listed=True)
            for sandbox in self.sandboxes.by_id.values()
            if sandbox.state == "running"
            and all(sandbox.metadata.get(k) == v for k, v in wanted.items())
        ]
        await respond(send, 200, rows)

    async def _one(
        self, send: Send, method: str, sandbox_id: str, timeout: bool, request: dict[str, Any]
    ) -> None:
        sandbox = self.sandboxes.running(sandbox_id)
        if sandbox is None:
            await respond(send, 404, {"code": 404, "message": f"sandbox {sandbox_id} not found"})
        elif timeout and method == "POST":
            sandbox.end_at = time.time() + int(request["timeout"])
            await respond(send, 204)
        elif method == "GET":
            await respond(send, 200, self._detail(sandbox))
        elif method == "DELETE":
            self.sandboxes.kill(sandbox_id)
            await respond(send, 204)
        else:
            await respond(send, 405, {"code": 405, "message": "method not allowed"})
