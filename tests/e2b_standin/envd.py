"""envd, the agent inside each sandbox, for the endpoints the SDK uses here.

Connect-RPC framing is the SDK's own: ``ProcessASGIApplication`` from ``e2b.envd`` (connectrpc)
decodes requests and encodes the event stream; :class:`ProcessService` only maps them onto
:mod:`.sandboxes`. The HTTP side is ``GET /health`` and ``POST /files`` (octet-stream upload).
Requests name their sandbox with ``E2b-Sandbox-Id`` (as the SDK sends them to e2b's sandbox
proxy) and must carry that sandbox's ``X-Access-Token``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import parse_qs

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import ProcessASGIApplication
from protobuf import Oneof

from .control import Receive, Scope, Send, receive_body, respond
from .sandboxes import Process, Sandbox, Sandboxes

__all__ = ["Envd", "ProcessService"]

Event = process_pb.ProcessEvent


def _sandbox_of(sandboxes: Sandboxes, headers: dict[str, str]) -> Sandbox | None:
    sandbox = sandboxes.running(headers.get("e2b-sandbox-id", ""))
    if sandbox is None or headers.get("x-access-token") != sandbox.access_token:
        return None
    return sandbox


class ProcessService:
    """The ``process.Process`` service (Start, Connect, SendSignal) over real processes."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes

    def _sandbox(self, ctx: Any) -> Sandbox:
        headers = {k.lower(): v for k, v in ctx.request_headers.items()}
        sandbox = _sandbox_of(self.sandboxes, headers)
        if sandbox is None:
            raise ConnectError(Code.NOT_FOUND, "sandbox not found or access token wrong")
        return sandbox

    async def start(
        self, request: process_pb.StartRequest, ctx: Any
    ) -> AsyncIterator[process_pb.StartResponse]:
        sandbox = self._sandbox(ctx)
        config = request.process
        assert config is not None
        process = await sandbox.spawn(
            config.cmd, list(config.args or []), dict(config.envs or {}), config.cwd
        )
        async for event in self._events(process):
            yield process_pb.StartResponse(event=event)

    async def connect(
        self, request: process_pb.ConnectRequest, ctx: Any
    ) -> AsyncIterator[process_pb.ConnectResponse]:
        sandbox = self._sandbox(ctx)
        selector = request.process.selector if request.process else None
        process = sandbox.processes.get(selector.value) if selector else None  # type: ignore[arg-type]
        if process is None:
            raise ConnectError(Code.NOT_FOUND, "process not found")
        async for event in self._events(process):
            yield process_pb.ConnectResponse(event=event)

    async def send_signal(
        self, request: process_pb.SendSignalRequest, ctx: Any
    ) -> process_pb.SendSignalResponse:
        sandbox = self._sandbox(ctx)
        selector = request.process.selector if request.process else None
        process = sandbox.processes.get(selector.value) if selector else None  # type: ignore[arg-type]
        if process is None:
            raise ConnectError(Code.NOT_FOUND, "process not found")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process_pb.SendSignalResponse()

    async def _unimplemented(self, request: Any, ctx: Any) -> Any:
        raise ConnectError(Code.UNIMPLEMENTED, "not implemented by the stand-in")

    # The generated application binds every method of the service up front.
    list = update = stream_input = send_input = close_stdin = _unimplemented

    async def _events(self, process: Process) -> AsyncIterator[Event]:
        yield Event(
            event=Oneof[Literal["start"], Event.StartEvent](
                "start", Event.StartEvent(pid=process.pid)
            )
        )
        async for item in process.follow():
            if isinstance(item, int):
                status = f"exit status {item}" if item >= 0 else f"signal: {-item}"
                yield Event(
                    event=Oneof[Literal["end"], Event.EndEvent](
                        "end", Event.EndEvent(exit_code=item, exited=item >= 0, status=status)
                    )
                )
                continue
            stream, data = item
            output = (
                Oneof[Literal["stderr"], bytes]("stderr", data)
                if stream == "stderr"
                else Oneof[Literal["stdout"], bytes]("stdout", data)
            )
            yield Event(
                event=Oneof[Literal["data"], Event.DataEvent](
                    "data", Event.DataEvent(output=output)
                )
            )


class Envd:
    """The ASGI app of every sandbox's envd: routes by header, RPC to connectrpc."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes
        self.rpc = ProcessASGIApplication(ProcessService(sandboxes))  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/process.Process/"):
            await self.rpc(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/health":
            await respond(send, 204)
            return
        sandbox = _sandbox_of(self.sandboxes, headers)
        if sandbox is None:
            await respond(send, 502, {"code": 502, "message": "sandbox not found"})
        elif scope["path"] == "/files" and scope["method"] == "POST":
            await self._upload(sandbox, scope, headers, receive, send)
        else:
            await respond(send, 404, {"code": 404, "message": "not implemented by the stand-in"})

    async def _upload(
        self, sandbox: Sandbox, scope: Scope, headers: dict[str, str], receive: Receive, send: Send
    ) -> None:
        if headers.get("content-type") != "application/octet-stream":
            await respond(
                send,
                400,
                {
                    "code": 400,
                    "message": "the stand-in takes application/octet-stream uploads only",
                },
            )
            return
        path = parse_qs(scope["query_string"].decode())["path"][0]
        target = sandbox.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(await receive_body(receive))
        await respond(send, 200, [{"name": target.name, "type": "file", "path": str(target)}])
