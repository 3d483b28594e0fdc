"""Real node daemons on loopback for tests: :class:`Cluster` builds any small graph of them.

A documented public helper (like httpx's MockTransport): authors of node plugins test them against
real daemons with it, as this project's engine, CLI and node tests do. Each daemon is ``python -m
codebolt_topo.node`` in its own process group with a 0600 LaunchConfig and a ready pipe;
:meth:`Cluster.configure` pushes each node the RuntimeConfig the planner would (peers for
out-edges, accepted digests for in-edges, shortest routes, remote-execution on nodes with in-edges);
edges named in ``dial`` are opened by their receiver, and nodes given a ``tls`` identity serve
``wss://`` (the cluster's clients pin the identity's CA).
:meth:`Cluster.stop` always kills every process group, so a failing test leaves nothing running.
:class:`RawPeer` is a protocol connection without the client library: what a peer holding a token
can send, frame by frame (tests of hostile peers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from codebolt_topo.client import NodeClient
from codebolt_topo.node.security.principals import upstream_sets
from codebolt_topo.readiness import daemon_command
from codebolt_topo.wire.clock import PeerClock
from codebolt_topo.wire.config import (
    DialOut,
    LaunchConfig,
    PeerLink,
    RuntimeConfig,
    TlsIdentity,
    token_digest,
)
from codebolt_topo.wire.frames import MAX_MESSAGE_SIZE
from codebolt_topo.wire.handshake import CLOCK_HEADER, SUBPROTOCOL

__all__ = ["Cluster", "RawPeer", "process_running", "shortest_routes"]

ADMIN_TOKEN = "admin-token-for-tests"


def process_running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False


def shortest_routes(
    nodes: list[str], edges: list[tuple[str, str]]
) -> dict[str, dict[str, list[str]]]:
    """source -> destination -> next hops on shortest paths (ties in edge order)."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        out[a].append(b)
    routes: dict[str, dict[str, list[str]]] = {}
    for src in nodes:
        dist = _bfs(out, src)
        table: dict[str, list[str]] = {}
        for dest, d in dist.items():
            if dest == src:
                continue
            table[dest] = [
                hop for hop in out[src] if dest in (hd := _bfs(out, hop)) and hd[dest] == d - 1
            ]
        routes[src] = table
    return routes


def _bfs(out: dict[str, list[str]], src: str) -> dict[str, int]:
    dist = {src: 0}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        for nxt in out[node]:
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return dist


class Cluster:
    """Daemons for ``nodes`` wired by ``edges`` (source -> target)."""

    def __init__(
        self,
        root: Path,
        edges: list[tuple[str, str]],
        nodes: list[str] | None = None,
        *,
        admin_token: str = ADMIN_TOKEN,
        dial: set[tuple[str, str]] | None = None,
        tls: dict[str, TlsIdentity] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self.edges = list(edges)
        self.dial = set(dial or ())
        """Edges (source, target) whose receiver opens the connection (``dial: receiver``)."""
        self.tls = dict(tls or {})
        self.host = host
        names = list(nodes or [])
        for a, b in self.edges:
            names += [n for n in (a, b) if n not in names]
        self.nodes = names
        self.admin_token = admin_token
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.generation = 0

    def url(self, node: str) -> str:
        """ws:// (wss:// with a certificate) URL of ``node``."""
        scheme = "wss" if node in self.tls else "ws"
        return f"{scheme}://{self.host}:{self.ports[node]}"

    def edge_token(self, source: str, target: str) -> str:
        """Token ``source`` presents to ``target``."""
        return f"edge-{source}-{target}-token"

    def dial_token(self, source: str, target: str) -> str:
        """Token ``target`` presents when it dials ``source`` (an edge in ``dial``)."""
        return f"dial-{source}-{target}-token"

    def start(self, timeout: float = 15.0) -> Cluster:
        """Start every daemon and wait until each reported its port."""
        pending: dict[int, str] = {}
        try:
            for node in self.nodes:
                pending[self._spawn(node)] = node
            deadline = time.monotonic() + timeout
            while pending:
                left = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select(list(pending), [], [], left)
                if not ready:
                    raise RuntimeError(f"nodes did not start: {sorted(pending.values())}")
                for fd in ready:
                    node = pending.pop(fd)
                    with os.fdopen(fd, "rb") as pipe:
                        line = pipe.readline()
                    if not line:
                        raise RuntimeError(f"node {node} exited before it was ready")
                    report = json.loads(line)
                    self.ports[node], self.pids[node] = report["port"], report["pid"]
        except BaseException:
            for fd in pending:
                os.close(fd)
            self.stop()
            raise
        return self

    def restart(self, node: str, timeout: float = 15.0) -> None:
        """Start ``node`` again on its old port (after a test killed it); not yet configured."""
        fd = self._spawn(node, self.ports[node])
        with os.fdopen(fd, "rb") as pipe:
            ready, _, _ = select.select([pipe], [], [], timeout)
            line = pipe.readline() if ready else b""
        if not line:
            raise RuntimeError(f"node {node} did not restart")
        self.pids[node] = json.loads(line)["pid"]

    def _spawn(self, node: str, port: int = 0) -> int:
        home = self.root / node
        (home / "ws").mkdir(parents=True, exist_ok=True)
        old = self.procs.pop(node, None)
        if old is not None:
            old.wait()
        config = LaunchConfig(
            topology="test",
            node=node,
            host=self.host,
            port=port,
            tls=self.tls.get(node),
            admin_token_digest=token_digest(self.admin_token),
            workspace=str(home / "ws"),
            state_dir=str(home),
        )
        path = home / "launch.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(config.model_dump_json())
        read_fd, write_fd = os.pipe()
        log = open(home / "daemon.log", "wb")  # noqa: SIM115 - owned by the child
        try:
            self.procs[node] = subprocess.Popen(
                daemon_command(path, write_fd),
                pass_fds=(write_fd,),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
            log.close()
        return read_fd

    def runtime(self, node: str, **overrides: Any) -> RuntimeConfig:
        """The RuntimeConfig the planner would push to ``node``."""
        routes = shortest_routes(self.nodes, self.edges)[node]
        inbound = [a for a, b in self.edges if b == node]
        values: dict[str, Any] = {
            "generation": self.generation,
            "peers": {b: self._peer_link(a, b) for a, b in self.edges if a == node},
            "dial": {
                a: DialOut(url=self.url(a), token=self.dial_token(a, b))
                for a, b in self.dial
                if b == node
            },
            "routes": routes,
            "accept": {a: token_digest(self.edge_token(a, node)) for a in inbound},
            "upstream": upstream_sets(self.edges).get(node, {}),
            "plugins": {"remote-execution": {}} if inbound else {},
        }
        values.update(overrides)
        return RuntimeConfig(**values)

    def _peer_link(self, a: str, b: str) -> PeerLink:
        if (a, b) in self.dial:
            return PeerLink(
                token=self.edge_token(a, b),
                dial="receiver",
                dialer_digest=token_digest(self.dial_token(a, b)),
            )
        return PeerLink(url=self.url(b), token=self.edge_token(a, b))

    def client_tls(self) -> Any:
        """The TLS context a client of this cluster pins (its nodes' CA), None without TLS."""
        if not self.tls:
            return None
        from codebolt_topo.wire.tls import client_context

        return client_context(next(iter(self.tls.values())).ca)

    async def configure(self, **per_node: dict[str, Any]) -> None:
        """Push every node its RuntimeConfig (``per_node[name]`` overrides fields)."""
        self.generation += 1
        for node in self.nodes:
            async with NodeClient.connect(
                self.url(node), self.admin_token, name=node, tls=self.client_tls()
            ) as client:
                await client.configure(self.runtime(node, **per_node.get(node, {})))

    def client(self, node: str, **options: Any) -> Any:
        """``NodeClient.connect`` to ``node`` as admin (an async context manager); ``options``
        go to ``connect`` (``resume``, ``retries``, ``keepalive``)."""
        options.setdefault("tls", self.client_tls())
        return NodeClient.connect(self.url(node), self.admin_token, name=node, **options)

    def stop(self, timeout: float = 5.0) -> dict[str, int | None]:
        """SIGTERM every daemon, SIGKILL whatever is left of its group; returns exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for node, proc in self.procs.items():
            try:
                codes[node] = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[node] = None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs.clear()
        return codes


class RawPeer:
    """One protocol connection without the client library: what an attacker holding a token
    can send, frame by frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.clock = PeerClock(ws.response.headers[CLOCK_HEADER])  # type: ignore[union-attr]

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, token: str) -> AsyncIterator[RawPeer]:
        async with connect(
            url,
            proxy=None,  # loopback daemons: never through the environment's proxy
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression=None,
            max_size=MAX_MESSAGE_SIZE,
        ) as ws:
            yield cls(ws)

    def exec(self, rid: str, target: str | list[str], **fields: Any) -> dict[str, Any]:
        """A well-formed, freshly stamped exec (fields override or add)."""
        message: dict[str, Any] = {"t": "exec", "id": rid, "target": target, "argv": ["true"]}
        return {**message, "issued": self.clock.stamp(), **fields}

    async def until_done(self, rid: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every control message of request ``rid`` up to the one carrying ``done`` (an
        AssertionError when none comes within ``timeout`` seconds: the node did not answer)."""
        seen: list[dict[str, Any]] = []

        async def read() -> list[dict[str, Any]]:
            async for frame in self.ws:
                if isinstance(frame, str):
                    message = json.loads(frame)
                    if message.get("id") == rid or message.get("ch") is not None:
                        seen.append(message)
                    if message.get("id") == rid and message.get("done"):
                        return seen
            raise AssertionError(f"connection closed before {rid} was done")

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no answer ending {rid} in {timeout} s: {seen}") from None
