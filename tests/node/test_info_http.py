"""``GET /info`` on real daemons: the admin's one-request look that a plain ``codebolt status``
takes of each loopback node instead of a WebSocket (``wire/probe.py``, ``engine/http_info.py``).

The node answers it before any upgrade and closes; every refusal of the handshake applies to it;
a one-shot prober keeps nothing open; and a node too old to know the path (a relay that answers
it as such a node does and passes everything else to a real daemon) is asked over a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from codebolt_topo import __version__
from codebolt_topo.client import NodeClient
from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.http_info import ask_info, info_over_http
from codebolt_topo.errors import ConfigError, ExecError
from codebolt_topo.model.state import Lifecycle, NodeState
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.pki import issue_ca
from codebolt_topo.wire.probe import read_info_answer

pytestmark = pytest.mark.slow


async def _raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as is and read until the node closes (it must: no keep-alive)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()


def _get(token: str | None, *extra: str) -> bytes:
    lines = ["GET /info HTTP/1.1", "Host: node", *extra]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _node(cluster: Cluster, name: str, url: str | None = None) -> NodeState:
    parts = urlsplit(url or cluster.url(name))
    return NodeState(
        name=name,
        provider="local",
        lifecycle=Lifecycle.RUNNING,
        host=parts.hostname,
        port=parts.port,
        admin_token=cluster.admin_token,
        launch_hash="h",
    )


def test_the_admin_gets_the_info_reply_as_json_and_the_node_closes(chain: Cluster) -> None:
    raw = asyncio.run(_raw(chain.url("b"), _get(chain.admin_token)))
    head = raw.partition(b"\r\n\r\n")[0].decode()
    assert "Content-Type: application/json" in head
    assert "text/plain" not in head
    assert "Cache-Control: no-store" in head
    info = read_info_answer(raw).info
    assert info is not None
    assert (info["t"], info["node"], info["version"]) == ("info", "b", __version__)
    assert info["peers"] == ["c"]
    assert info["generation"] >= 1


@pytest.mark.parametrize(
    ("token", "extra", "status"),
    [
        (None, (), 401),
        ("not-a-token", (), 401),
        ("edge-b-c-token", (), 403),  # b's work token at c: a peer, not the admin
        ("admin", ("Origin: https://evil.example",), 403),  # a browser, even with the token
        ("edge-b-c-token", ("Codebolt-Dial: b", "Codebolt-Nonce: " + "0" * 32), 401),
    ],
)
def test_every_refusal_of_the_handshake_applies(
    chain: Cluster, token: str | None, extra: tuple[str, ...], status: int
) -> None:
    presented = chain.admin_token if token == "admin" else token
    answer = read_info_answer(asyncio.run(_raw(chain.url("c"), _get(presented, *extra))))
    assert (answer.status, answer.info) == (status, None)


@pytest.mark.parametrize("path", ["/info", "/join", "/"])
def test_only_get_is_served_on_any_path(chain: Cluster, path: str) -> None:
    """websockets hands the request hook any method: a POST with the admin token got the
    ``info`` reply before the server refused every method but GET."""
    request = f"POST {path} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {chain.admin_token}"
    raw = asyncio.run(_raw(chain.url("a"), (request + "\r\nContent-Length: 0\r\n\r\n").encode()))
    answer = read_info_answer(raw)
    assert (answer.status, answer.info) == (405, None)
    assert b"\r\nAllow: GET\r\n" in raw


def test_a_one_shot_prober_keeps_nothing_open(chain: Cluster) -> None:
    prober = HeartbeatProber(one_shot=True)

    async def main() -> list[str | None]:
        try:
            return [await prober.probe(_node(chain, n), 2.0) for n in ("a", "d")]
        finally:
            await prober.close()

    assert asyncio.run(main()) == [None, None]
    assert prober._open == {}
    assert set(prober.generations) == {"a", "d"}


def test_a_refused_token_and_a_closed_port_read_as_over_a_websocket(chain: Cluster) -> None:
    async def refused() -> None:
        await ask_info(chain.url("a"), "wrong", name="a")

    with pytest.raises(ConfigError, match=r"node 'a' at ws://.* refused the token \(401\)"):
        asyncio.run(refused())
    with contextlib.closing(socket.socket()) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    url = f"ws://127.0.0.1:{port}"

    async def closed() -> tuple[str, str]:
        with pytest.raises(ExecError) as over_http:
            await ask_info(url, chain.admin_token, name="gone")
        with pytest.raises(ExecError) as over_websocket:
            async with NodeClient.connect(url, chain.admin_token, name="gone", retries=0):
                pass
        return str(over_http.value), str(over_websocket.value)

    over_http, over_websocket = asyncio.run(closed())
    assert over_http == over_websocket
    assert over_http.startswith(f"cannot reach node 'gone' at {url}: ")


@contextlib.asynccontextmanager
async def _older_node(url: str) -> AsyncIterator[str]:
    """A node that predates ``GET /info``: answers it 426 (as websockets does a request that
    does not upgrade) and relays every other connection, byte for byte, to the node at ``url``."""
    target = urlsplit(url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /info "):
            body = b"Failed to open a WebSocket connection: missing Connection header.\n"
            writer.write(
                b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        up_writer.write(head)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_node_that_predates_the_path_is_asked_over_a_websocket(chain: Cluster) -> None:
    prober = HeartbeatProber(one_shot=True)

    async def main() -> tuple[bool, str | None, int]:
        async with _older_node(chain.url("b")) as url:
            predates = (await ask_info(url, chain.admin_token, name="b")).predates
            try:
                error = await prober.probe(_node(chain, "b", url), 2.0)
                return predates, error, len(prober._open)
            finally:
                await prober.close()

    assert asyncio.run(main()) == (True, None, 1)
    assert "b" in prober.generations


def test_only_loopback_urls_are_asked_over_http() -> None:
    assert info_over_http("ws://127.0.0.1:3100")
    assert info_over_http("wss://[::1]:3100")
    assert info_over_http("ws://localhost:3100")
    assert not info_over_http("ws://10.1.2.3:3100")  # a proxy may stand in front
    assert not info_over_http("wss://node.example:3100")
    assert not info_over_http("http://127.0.0.1:3100")


def test_a_tls_node_answers_over_tls_pinned_to_its_ca_and_name(tmp_path: Path) -> None:
    ca = issue_ca("probe-test")
    cluster = Cluster(tmp_path, [("a", "b")], tls={n: ca.issue(n) for n in ("a", "b")}).start()
    try:
        node = _node(cluster, "b", cluster.url("b")).model_copy(update={"pinned_ca": ca.cert})
        wrong = node.model_copy(update={"name": "a"})  # b's certificate does not name a
        prober = HeartbeatProber(one_shot=True)

        async def main() -> tuple[str | None, str | None]:
            try:
                return await prober.probe(node, 2.0), await prober.probe(wrong, 2.0)
            finally:
                await prober.close()

        right, refused = asyncio.run(main())
        assert right is None
        assert refused is not None
        assert "certificate" in refused
        assert prober._open == {}
    finally:
        cluster.stop()
