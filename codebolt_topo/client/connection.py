"""A connection to one node: :class:`NodeClient` sends requests (``exec``, ``attach``,
``configure``, ``info``) over one link, reconnecting it when it dropped."""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from codebolt_topo.client.events import SnapshotRequest
from codebolt_topo.client.handle import ExecHandle, Stdin, TargetProgress
from codebolt_topo.errors import ExecError
from codebolt_topo.wire.codec import fingerprint
from codebolt_topo.wire.config import RuntimeConfig
from codebolt_topo.wire.link import Link
from codebolt_topo.wire.tls import pinned_client

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from codebolt_topo.model.state import NodeState

__all__ = ["NodeClient"]


class NodeClient:
    """A connection to one node. Use :meth:`connect` as an async context manager.

    ``resume`` (default True) makes handles survive a dropped connection or a lost link on the
    path: the client reconnects (up to ``retries`` attempts per job, backoff 50 ms doubling to
    2 s) and resumes open jobs. ``keepalive`` is (ping interval or None, pong timeout) seconds.
    """

    def __init__(
        self,
        link: Link,
        *,
        url: str | None = None,
        token: str | None = None,
        name: str | None = None,
        resume: bool = True,
        retries: int = 8,
        keepalive: tuple[float | None, float] = (20.0, 20.0),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._link = link
        self._url, self._token, self._name = url, token, name
        self._keepalive = keepalive
        self._tls = tls
        self.resumes = resume and url is not None
        self.retries = retries
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        token: str,
        *,
        name: str | None = None,
        resume: bool = True,
        retries: int = 8,
        keepalive: tuple[float | None, float] = (20.0, 20.0),
        tls: ssl.SSLContext | None = None,
        ca: str | None = None,
    ) -> AsyncIterator[NodeClient]:
        """Connect to the node at ``url``; ``name`` (the node's) only improves error messages.

        A ``wss://`` node of a topology with certificates: pass ``ca``, the topology's CA
        certificate (PEM), or ``tls``, a context pinning it (``wire/tls.client_context``), and
        ``name``, which the node's certificate must carry.

        Leaving the context closes the connection without cancelling anything: jobs still
        running keep running on their nodes (for their lease) and can be attached again.
        """
        if tls is None:
            tls = pinned_client(ca, url)
        link = await Link.open(url, token, name or "", keepalive, tls)
        client = cls(
            link,
            url=url,
            token=token,
            name=name,
            resume=resume,
            retries=retries,
            keepalive=keepalive,
            tls=tls,
        )
        try:
            yield client
        finally:
            client._closed = True
            await client._link.close()

    @classmethod
    def admin(cls, node: NodeState, **options: Any) -> AbstractAsyncContextManager[NodeClient]:
        """:meth:`connect` to ``node`` as the engine does: its URL and admin token from the
        state, the topology's CA pinned and its name checked when it serves TLS. The one way
        the engine, the CLI and the watch reach a node (``options`` as for :meth:`connect`)."""
        return cls.connect(
            node.url or "", node.admin_token, name=node.name, ca=node.pinned_ca, **options
        )

    async def link(self) -> Link:
        """The connection, reconnected first when it dropped (raises ExecError/ConfigError)."""
        if not self._link.closed or self._url is None or self._token is None:
            return self._link
        async with self._lock:
            if self._closed:
                raise ExecError("the client was closed", node=self._name, code="peer-lost")
            if self._link.closed:
                self._link = await Link.open(
                    self._url, self._token, self._name or "", self._keepalive, self._tls
                )
            return self._link

    def wire_id(self, request_id: str) -> str:
        """A fresh id for one more message of ``request_id`` on this connection."""
        return f"{request_id}#{next(self._ids)}"

    async def exec(
        self,
        target: str | list[str],
        argv: list[str] | None = None,
        shell: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: Stdin | None = None,
        request_id: str | None = None,
        snapshot: SnapshotRequest | None = None,
    ) -> ExecHandle:
        """Start ``argv`` (or ``shell``) on ``target`` (a node or a list); returns at once.

        ``snapshot`` has each executing node record its workspace around the job (see
        :class:`SnapshotRequest`); the snapshots come back in the target's :class:`Exit`.

        ``request_id`` (default: a fresh one) makes the request idempotent: the same id sent
        again, from any client, runs once and streams the same result; with another payload it
        is refused with ``conflict``.
        """
        if (argv is None) == (shell is None):
            raise ExecError("exec needs exactly one of argv and shell", code="bad-request")
        # Random through and through, not a per-connection prefix and a counter: requests that
        # share a connection (every exec through the broker) must differ in their first
        # characters too, which is what `jobs attach ID` abbreviations match on.
        request_id = request_id or os.urandom(8).hex()
        msg: dict[str, Any] = {
            "t": "exec",
            "id": request_id,
            "target": target,
            "env": dict(env or {}),
            "cwd": cwd,
            "timeout": timeout,
            "stdin": stdin is not None,
        }
        if argv is not None:
            msg["argv"] = list(argv)
        else:
            msg["shell"] = shell
        if snapshot is not None:
            msg["snapshot"] = snapshot.to_wire()
        msg["digest"] = fingerprint(msg)
        link = await self.link()
        names = [target] if isinstance(target, str) else list(dict.fromkeys(target))
        handle = ExecHandle(
            link,
            request_id,
            stdin,
            client=self,
            request=msg,
            targets={n: TargetProgress(n) for n in names},
        )
        await link.request(msg, handle)
        return handle

    async def attach(
        self, request_id: str, target: str, offsets: Mapping[str, int] | None = None
    ) -> ExecHandle:
        """Follow request ``request_id`` on ``target`` from ``offsets`` (``stdout``/``stderr``
        bytes already received; default 0): the node replays what follows, then streams live.
        Fails with ``truncated`` when the node no longer holds those bytes."""
        stdout, stderr = (offsets or {}).get("stdout", 0), (offsets or {}).get("stderr", 0)
        link = await self.link()
        wire = self.wire_id(request_id)
        handle = ExecHandle(
            link, wire, None, client=self, targets={target: TargetProgress(target, stdout, stderr)}
        )
        handle.id = request_id
        await link.request(
            {
                "t": "attach",
                "id": wire,
                "origin": request_id,
                "target": target,
                "resume": {target: {"stdout": stdout, "stderr": stderr}},
            },
            handle,
        )
        return handle

    async def info(self, detail: bool = False) -> dict[str, Any]:
        """The node's ``info`` (name, gateway, plugins, peers, generation, job counts by state;
        ``detail`` adds every held job)."""
        return await (await self.link()).call({"t": "info", "detail": detail})

    async def presence(self, node: str, timeout: float = 2.0) -> dict[str, Any]:
        """How this node sees ``node``'s connections to it (admin only): ``state`` (up, left,
        lost, never), ``since``, ``remote``, and for an ``up`` node ``rtt_ms``, a ping's round
        trip over the connection that node opened. A joined node's heartbeat."""
        message = {"t": "presence", "node": node, "timeout": timeout}
        return await (await self.link()).call(message)

    async def configure(self, runtime: RuntimeConfig | Mapping[str, Any]) -> int:
        """Push a RuntimeConfig (admin only); returns the generation the node now has."""
        config = runtime.model_dump() if isinstance(runtime, RuntimeConfig) else dict(runtime)
        reply = await (await self.link()).call({"t": "configure", "config": config})
        return int(reply["generation"])

    async def sync(
        self,
        peer: str,
        direction: Literal["push", "pull"],
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Have this node (the sender of an edge to ``peer``) sync its narrative history with
        ``peer`` itself, over their edge's link (admin only): ``push`` moves this node's
        history to ``peer``, ``pull`` the other way. Returns the ``synced`` answer (bytes
        moved, seconds, and in ``report`` what the import did: thread ids per outcome, objects
        written); ``on_progress`` gets the ``data`` of each progress ``notify`` (``stage``,
        ``bytes``). No bundle byte passes through this connection."""

        def relay(message: dict[str, Any]) -> None:
            if on_progress is not None and isinstance(message.get("data"), dict):
                on_progress(message["data"])

        link = await self.link()
        return await link.call({"t": "sync", "peer": peer, "direction": direction}, relay)
