"""Issue 14, item 1: who dials is separate from who sends work.

Edges ``a -> b`` here say ``dial: receiver``: ``b`` opens the connection to ``a`` and ``a``
sends its work over it. Real daemons on loopback; the tests show that work runs over the dialed
link (``a`` has no URL for ``b`` at all), that it flows only from sender to receiver, that every
token is refused where it does not belong (a hostile peer holding a valid token for another
edge, or for the other side of this one), that the receiver serves no sender that cannot prove
itself, that the replay guard holds over a dialed link, and that a link cut mid-stream comes
back by itself and the stream resumes byte-identical with one exit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from node.test_link_drop import REFERENCE, LinkProxy, stream_through_outage
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from codebolt_topo.client import ExecResult, Exit, Failed
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.clock import PeerClock
from codebolt_topo.wire.config import DialOut
from codebolt_topo.wire.dialing import new_nonce, proof_from_token
from codebolt_topo.wire.handshake import (
    CLOCK_HEADER,
    DIAL_HEADER,
    NONCE_HEADER,
    PROOF_HEADER,
    SUBPROTOCOL,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def dialed(tmp_path: Path) -> Iterator[Cluster]:
    """a -> b and a -> c, both opened by their receiver; b -> d opened by b as usual."""
    cluster = Cluster(tmp_path, [("a", "b"), ("a", "c"), ("b", "d")], dial={("a", "b"), ("a", "c")})
    cluster.start()
    try:
        asyncio.run(cluster.configure())
        yield cluster
    finally:
        cluster.stop()


def test_work_runs_over_the_link_the_receiver_opened(dialed: Cluster) -> None:
    async def main() -> ExecResult:
        async with dialed.client("a") as client:
            handle = await client.exec(["b", "c", "d"], shell="echo $CODEBOLT_NODE")
            return await handle.result()

    result = asyncio.run(main())
    assert result.failures == []
    for node in ("b", "c", "d"):
        assert result[node].stdout == node.encode() + b"\n"
        assert result[node].exit is not None
        assert result[node].exit.code == 0
    assert dialed.runtime("a").peers["b"].url is None  # a could not have dialed b
    log = (dialed.root / "a" / "daemon.log").read_text()
    assert "link a -> b open (dialed by b)" in log


def test_a_dialed_link_carries_work_only_from_sender_to_receiver(dialed: Cluster) -> None:
    """b holds a connection to a, yet cannot send a any work: b has no route to a, and a
    treats whatever b sends on the connection b dialed as answers, never as requests."""

    async def main() -> tuple[ExecResult, list[dict[str, Any]]]:
        async with dialed.client("b") as client:
            handle = await client.exec("a", argv=["sh", "-c", "echo run >> ran"])
            refused = await handle.result()
        answers: list[dict[str, Any]] = []
        async with _dial_raw(dialed, "a", "b", dialed.dial_token("a", "b")) as ws:
            clock = PeerClock(ws.request.headers[CLOCK_HEADER])  # type: ignore[union-attr]
            exec_frame = {
                "t": "exec",
                "id": "sneak",
                "target": "a",
                "argv": ["sh", "-c", "echo run >> ran"],
                "issued": clock.stamp(),
            }
            await ws.send(json.dumps(exec_frame))
            await ws.send(json.dumps({"t": "info", "id": "i"}))
            try:
                async with asyncio.timeout(1.0):
                    answers.extend([json.loads(str(frame)) async for frame in ws])
            except TimeoutError:
                pass
        return refused, answers

    refused, answers = asyncio.run(main())
    failure = refused["a"].failure
    assert failure is not None
    assert failure.code == "unreachable"
    assert answers == []
    assert not (dialed.root / "a" / "ws" / "ran").exists()


@pytest.mark.parametrize(
    ("node", "name", "token", "why"),
    [
        ("a", "b", "dial-a-c-token", "another edge's dial token, claiming b"),
        ("a", "c", "dial-a-b-token", "b's dial token, claiming c"),
        ("a", "b", "edge-a-b-token", "the sender's work token, from the receiver's side"),
        ("a", "d", "dial-a-b-token", "a node that has no edge from a"),
        ("b", "a", "dial-a-b-token", "the dial token turned back at the receiver"),
        ("c", "b", "dial-a-b-token", "b's dial token at another node"),
    ],
)
def test_a_token_from_the_wrong_side_or_for_another_edge_is_refused(
    dialed: Cluster, node: str, name: str, token: str, why: str
) -> None:
    async def main() -> int:
        try:
            async with _dial_raw(dialed, node, name, token):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(main()) == 401, why


def test_a_dial_token_is_no_work_token(dialed: Cluster) -> None:
    """Presented without ``Codebolt-Dial`` (as a peer sending work), b's dial token is
    unknown at a."""

    async def main() -> int:
        try:
            async with connect(
                dialed.url("a"),
                additional_headers={"Authorization": "Bearer " + dialed.dial_token("a", "b")},
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(main()) == 401


@pytest.mark.parametrize("proof", ["none", "other-edge", "valid"])
def test_the_receiver_serves_only_a_sender_that_proves_itself(tmp_path: Path, proof: str) -> None:
    """A stand-in sender takes b's dial (it holds b's dial token digest, as a stolen
    configuration or a spoofed address would give it). Without the proof of the edge's work
    token b closes the connection and runs nothing; with it, b serves it, and the replay guard
    holds on that link: an unstamped or stale exec is refused."""
    cluster = Cluster(tmp_path, [("a", "b")], nodes=["a", "b"])
    cluster.start()
    try:
        answers, closed = asyncio.run(_fake_sender(cluster, proof))
    finally:
        cluster.stop()
    ran = (tmp_path / "b" / "ws" / "ran").read_text() if proof == "valid" else ""
    if proof != "valid":
        assert answers == {}
        assert closed == 1008
        assert not (tmp_path / "b" / "ws" / "ran").exists()
        log = (tmp_path / "b" / "daemon.log").read_text()
        assert "did not prove it is 'a'" in log
        return
    assert answers["fresh"][-1]["t"] == "exit"
    assert answers["unstamped"][-1]["code"] == "bad-request"
    assert answers["stale"][-1]["code"] == "replayed"
    assert ran == "run\n"  # once: the two refused frames ran nothing


async def _fake_sender(cluster: Cluster, proof: str) -> tuple[dict[str, list[Any]], int | None]:
    """Stand in for a at an address b dials; returns b's answers by request and how b closed."""
    dial_token = "dial-token-the-stand-in-knows"
    dialed = asyncio.get_running_loop().create_future()

    def answer(ws: ServerConnection, request: Request, response: Response) -> None:
        nonce = request.headers[NONCE_HEADER]
        if request.headers.get("Authorization") != f"Bearer {dial_token}":
            raise AssertionError("b presented another token")
        if proof == "valid":
            response.headers[PROOF_HEADER] = proof_from_token(
                cluster.edge_token("a", "b"), "a", "b", nonce
            )
        elif proof == "other-edge":
            response.headers[PROOF_HEADER] = proof_from_token(
                cluster.edge_token("a", "b"), "a", "c", nonce
            )

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        clock = PeerClock(ws.request.headers[CLOCK_HEADER])
        answers: dict[str, list[Any]] = {}
        frames = {
            "fresh": {"issued": clock.stamp()},
            "unstamped": {},
            "stale": {"issued": {**clock.stamp(), "at": clock.stamp()["at"] - 3600}},
        }
        try:
            for rid, extra in frames.items():
                message = {
                    "t": "exec",
                    "id": rid,
                    "target": "b",
                    "argv": ["sh", "-c", "echo run >> ran"],
                }
                await ws.send(json.dumps({**message, **extra}))
                async for frame in ws:
                    if isinstance(frame, str):
                        got = json.loads(frame)
                        answers.setdefault(got.get("id") or rid, []).append(got)
                        if got.get("done"):
                            break
        finally:
            if not dialed.done():
                dialed.set_result((answers, ws.close_code))

    async with serve(
        handler, "127.0.0.1", 0, process_response=answer, subprotocols=[SUBPROTOCOL]
    ) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        await cluster.configure(
            b={"dial": {"a": DialOut(url=f"ws://127.0.0.1:{port}", token=dial_token)}}
        )
        result: tuple[dict[str, list[Any]], int | None] = await asyncio.wait_for(dialed, 15)
        await cluster.configure(b={"dial": {}})  # stop b's redialing before the server closes
        return result


def test_a_dialed_link_cut_mid_stream_comes_back_and_the_stream_resumes(
    tmp_path: Path,
) -> None:
    """b reaches a only through a relay standing in for the network; the relay drops every
    connection mid-stream and refuses new ones for a while. b redials by itself; the client
    resumes through a: byte-identical, one exit."""
    cluster = Cluster(tmp_path, [("a", "b"), ("b", "c")], dial={("a", "b")})
    cluster.start()

    async def main() -> tuple[bytes, list[object], int]:
        proxy = LinkProxy(cluster.ports["a"])
        url = await proxy.start()
        await cluster.configure(
            b={"dial": {"a": DialOut(url=url, token=cluster.dial_token("a", "b"))}}
        )
        received, others = await stream_through_outage(cluster, proxy)
        return received, others, proxy.dropped

    try:
        received, others, dropped = asyncio.run(main())
    finally:
        cluster.stop()
    assert dropped >= 2, "the link was never cut: the test proved nothing"
    assert received == REFERENCE
    assert [e.code for e in others if isinstance(e, Exit)] == [0]  # exactly once
    assert [e for e in others if isinstance(e, Failed)] == []
    log = (tmp_path / "b" / "daemon.log").read_text()
    assert log.count("link a -> b open (dialed by b)") >= 2  # b dialed again


@asynccontextmanager
async def _dial_raw(cluster: Cluster, node: str, name: str, token: str) -> AsyncIterator[Any]:
    """Dial ``node`` as the receiver ``name`` would, presenting ``token``."""
    async with connect(
        cluster.url(node),
        additional_headers={
            "Authorization": f"Bearer {token}",
            DIAL_HEADER: name,
            NONCE_HEADER: new_nonce(),
            CLOCK_HEADER: "0" * 16 + " 0.0",
        },
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
    ) as ws:
        yield ws
