"""The Python API an agent (and ``codebolt exec``) uses to run work on a node network.

::

    async with NodeClient.connect("ws://127.0.0.1:3100", token) as client:
        handle = await client.exec("c", argv=["nvidia-smi"])
        async for event in handle:          # Started, Output, Notification, Exit, Failed
            ...
        # or: result = await handle.result(); result["c"].stdout

One connection carries any number of concurrent requests. Output arrives as it is produced;
the client checks every chunk's offset (a gap or duplicate raises ProtocolError). Failures are
:mod:`codebolt_topo.errors`: a refused token is ConfigError, an unreachable node ExecError.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from codebolt_topo.errors import ExecError, ProtocolError
from codebolt_topo.node.config import RuntimeConfig
from codebolt_topo.node.link import Link
from codebolt_topo.node.protocol import (
    CHUNK_SIZE,
    STDIN,
    JobStream,
    encode,
    pack_data,
    unpack_data,
)

__all__ = ["Event", "ExecHandle", "ExecResult", "Exit", "Failed", "NodeClient", "NodeResult",
           "Notification", "Output", "Started"]


@dataclass(frozen=True, slots=True)
class Started:
    """A job started on ``node`` as process ``pid``; ``path`` lists the hops, entry first."""

    node: str
    pid: int | None
    path: list[str]


@dataclass(frozen=True, slots=True)
class Output:
    """A chunk of a job's stdout or stderr, at byte ``offset`` of that stream."""

    node: str
    stream: Literal["stdout", "stderr"]
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification from the job's process (CODEBOLT_NOTIFY_FD) or a plugin."""

    node: str
    kind: str
    data: Any


@dataclass(frozen=True, slots=True)
class Exit:
    """A job ended: ``code`` (None when killed by ``signal``), duration in seconds."""

    node: str
    code: int | None
    signal: str | None
    duration: float
    timed_out: bool
    cancelled: bool


@dataclass(frozen=True, slots=True)
class Failed:
    """A job (``node`` target) or the whole request (node None) failed at ``hop``."""

    node: str | None
    hop: str | None
    code: str
    message: str

    def error(self) -> ExecError:
        """This failure as an exception."""
        return ExecError(self.message, node=self.node, hop=self.hop, code=self.code)


Event = Started | Output | Notification | Exit | Failed


@dataclass(slots=True)
class NodeResult:
    """Everything one target produced."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit: Exit | None = None
    failure: Failed | None = None


@dataclass(slots=True)
class ExecResult:
    """Per-target results of a request, plus failures that named no target."""

    nodes: dict[str, NodeResult] = field(default_factory=dict)
    failures: list[Failed] = field(default_factory=list)

    def __getitem__(self, node: str) -> NodeResult:
        return self.nodes[node]

    def raise_for_failures(self) -> None:
        """Raise the first failure as ExecError (a non-zero exit is not a failure)."""
        for failed in self.failures:
            raise failed.error()


_NAMES: tuple[Literal["stdout", "stderr"], ...] = ("stdout", "stdout", "stderr")


class ExecHandle:
    """A running request: iterate it for events until every target has ended."""

    def __init__(self, link: Link, request_id: str, stdin: bytes | None) -> None:
        self._link = link
        self.id = request_id
        self._stdin = stdin
        self._events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._jobs: dict[int, JobStream] = {}
        self._channels: dict[str, int] = {}
        self._writers: set[asyncio.Task[None]] = set()
        self._finished = False

    def __aiter__(self) -> ExecHandle:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        item = await self._events.get()
        if item is None:
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        return item

    async def result(self) -> ExecResult:
        """Consume the remaining events and collect them per node."""
        result = ExecResult()
        out: dict[str, tuple[list[bytes], list[bytes]]] = {}
        async for event in self:
            if isinstance(event, Output):
                parts = out.setdefault(event.node, ([], []))
                parts[event.stream == "stderr"].append(event.data)
            elif isinstance(event, Exit):
                result.nodes.setdefault(event.node, NodeResult()).exit = event
            elif isinstance(event, Failed):
                result.failures.append(event)
                if event.node is not None:
                    result.nodes.setdefault(event.node, NodeResult()).failure = event
        for node, (stdout, stderr) in out.items():
            entry = result.nodes.setdefault(node, NodeResult())
            entry.stdout, entry.stderr = b"".join(stdout), b"".join(stderr)
        return result

    async def cancel(self) -> None:
        """Cancel every job of the request, on every node it reached."""
        await self._link.send(encode({"t": "cancel", "id": self.id}))

    async def signal(self, node: str, sig: str) -> None:
        """Deliver ``sig`` (e.g. ``"SIGINT"``) to the process group of the job on ``node``."""
        await self._link.send(encode({"t": "signal", "ch": self._channel(node), "signal": sig}))

    async def notify(self, kind: str, data: Any = None, node: str | None = None) -> None:
        """Send a notification down to the executing node(s) plugins (one node, or all)."""
        where = {"ch": self._channel(node)} if node is not None else {"id": self.id}
        await self._link.send(encode({"t": "notify", **where, "kind": kind, "data": data}))

    def _channel(self, node: str) -> int:
        try:
            return self._channels[node]
        except KeyError:
            raise ExecError(f"no running job on node {node!r} in this request", node=node,
                            code="bad-request") from None

    async def _write_stdin(self, ch: int, data: bytes) -> None:
        view = memoryview(data)
        for offset in range(0, len(view), CHUNK_SIZE):
            await self._link.send(pack_data(STDIN, ch, offset, view[offset:offset + CHUNK_SIZE]))
        await self._link.send(encode({"t": "eof", "ch": ch}))

    # Link handler -------------------------------------------------------------------------
    async def on_control(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        put = self._events.put_nowait
        if kind == "started":
            node, ch = msg["node"], msg["ch"]
            self._jobs[ch] = JobStream(node)
            self._channels[node] = ch
            put(Started(node, msg.get("pid"), msg.get("path", [])))
            if self._stdin is not None:
                task = asyncio.ensure_future(self._write_stdin(ch, self._stdin))
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)
        elif kind == "exit":
            job = self._jobs.pop(msg["ch"], None)
            if job is None:
                put(ProtocolError(f"exit on unknown channel {msg['ch']}"))
                return
            self._channels.pop(job.node, None)
            try:
                job.exit(msg.get("stdout_bytes"), msg.get("stderr_bytes"))
            except ProtocolError as exc:
                put(exc)
                return
            put(Exit(msg["node"], msg.get("code"), msg.get("signal"), msg.get("duration", 0.0),
                     msg.get("timed_out", False), msg.get("cancelled", False)))
        elif kind == "error":
            if "ch" in msg:
                gone = self._jobs.pop(msg["ch"], None)
                if gone is not None:
                    self._channels.pop(gone.node, None)
            put(Failed(msg.get("node"), msg.get("hop"), msg["code"], msg["message"]))
        elif kind == "notify":
            put(Notification(msg.get("node") or "", msg["kind"], msg.get("data")))

    async def on_data(self, frame: bytes) -> None:
        stream, ch, offset, payload = unpack_data(frame)
        job = self._jobs.get(ch)
        if job is None or stream == STDIN:
            return
        try:
            job.data(stream, offset, len(payload))
        except ProtocolError as exc:
            self._events.put_nowait(exc)
            return
        self._events.put_nowait(Output(job.node, _NAMES[stream], bytes(payload), offset))

    async def on_done(self) -> None:
        self._events.put_nowait(None)

    async def on_lost(self, reason: str) -> None:
        self._events.put_nowait(Failed(None, None, "peer-lost", f"connection lost: {reason}"))
        self._events.put_nowait(None)



class NodeClient:
    """A connection to one node. Use :meth:`connect` as an async context manager."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, token: str, *,
                      name: str | None = None) -> AsyncIterator[NodeClient]:
        """Connect to the node at ``url``; ``name`` (the node's) only improves error messages."""
        link = await Link.open(url, token, name or "")
        try:
            yield cls(link)
        finally:
            await link.close()

    async def exec(self, target: str | list[str], argv: list[str] | None = None,
                   shell: str | None = None, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = None,
                   stdin: bytes | None = None) -> ExecHandle:
        """Start ``argv`` (or ``shell``) on ``target`` (a node or a list); returns at once."""
        if (argv is None) == (shell is None):
            raise ExecError("exec needs exactly one of argv and shell", code="bad-request")
        request_id = f"{self._prefix}-{next(self._ids)}"
        msg: dict[str, Any] = {"t": "exec", "id": request_id, "target": target,
                               "env": dict(env or {}), "cwd": cwd, "timeout": timeout,
                               "stdin": stdin is not None}
        if argv is not None:
            msg["argv"] = list(argv)
        else:
            msg["shell"] = shell
        handle = ExecHandle(self._link, request_id, stdin)
        await self._link.request(msg, handle)
        return handle

    async def info(self) -> dict[str, Any]:
        """The node's ``info`` (name, gateway, plugins, peers, generation, running jobs…)."""
        return await self._link.call({"t": "info"})

    async def configure(self, runtime: RuntimeConfig | Mapping[str, Any]) -> int:
        """Push a RuntimeConfig (admin only); returns the generation the node now has."""
        config = runtime.model_dump() if isinstance(runtime, RuntimeConfig) else dict(runtime)
        reply = await self._link.call({"t": "configure", "config": config})
        return int(reply["generation"])
