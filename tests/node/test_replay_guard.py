"""Issue 12, finding 9: a request cannot be run twice by resending its frame, whenever it is
resent (after the retention, after the request's ttl, after the node restarted, through a hop).

Each test captures a real exec frame (stamped on the receiving node's clock, as a peer sends
it), lets it run once, then resends the very same frame. The command appends a line to a file
in the executing node's workspace: the file says how often it ran.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.errors import ProtocolError
from codebolt_topo.testing import Cluster, RawPeer
from codebolt_topo.wire.clock import CLOCK_REFRESH, NodeClock, PeerClock, SeenRequests

RUN = ["sh", "-c", "echo run >> ran"]


def runs(cluster: Cluster, node: str) -> int:
    ran = cluster.root / node / "ws" / "ran"
    return len(ran.read_text().splitlines()) if ran.exists() else 0


async def send(cluster: Cluster, node: str, frame: str, rid: str) -> list[dict[str, Any]]:
    """Send ``frame`` on a new connection to ``node`` as peer a; its answers up to done."""
    async with RawPeer.connect(cluster.url(node), cluster.edge_token("a", node)) as peer:
        await peer.ws.send(frame)
        return await peer.until_done(rid)


async def capture(cluster: Cluster, node: str, rid: str, target: str) -> str:
    """A frame as a→``node`` sends it (stamped on ``node``'s clock)."""
    async with RawPeer.connect(cluster.url(node), cluster.edge_token("a", node)) as peer:
        return json.dumps(peer.exec(rid, target, argv=RUN))


def ran_once(answers: list[dict[str, Any]]) -> bool:
    last = answers[-1]
    return bool(last["t"] == "exit" and last["code"] == 0)


def refusal(answers: list[dict[str, Any]]) -> tuple[str, str | None, str]:
    (error,) = [m for m in answers if m["t"] == "error"]
    return error["code"], error["hop"], error["message"]


async def wait_forgotten(cluster: Cluster, node: str) -> None:
    """Until ``node``'s job table holds no job (retention 0: a moment after the exit)."""
    async with cluster.client(node) as admin:
        for _ in range(100):
            if not (await admin.info(detail=True))["job_list"]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{node} still holds jobs")


@pytest.mark.slow
def test_a_resent_frame_is_refused_within_and_after_its_ttl(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([("a", "b")], b={"retention": 0, "request_ttl": 1.5})

    async def main() -> tuple[Any, ...]:
        frame = await capture(cluster, "b", "r1", "b")
        first = await send(cluster, "b", frame, "r1")
        await wait_forgotten(cluster, "b")  # the job table forgot it: only the seen ids know
        within = await send(cluster, "b", frame, "r1")
        await asyncio.sleep(1.6)
        after = await send(cluster, "b", frame, "r1")
        return first, within, after

    first, within, after = asyncio.run(main())
    assert ran_once(first)
    assert refusal(within) == (
        "replayed",
        "b",
        "node 'b' already ran request 'r1' in the last 1.5 s (request_ttl) and no longer "
        "holds it: not run again",
    )
    code, hop, message = refusal(after)
    assert (code, hop) == ("replayed", "b")
    assert "node 'b': request 'r1' was issued " in message
    assert "longer than request_ttl (1.5 s)" in message
    assert runs(cluster, "b") == 1


def test_a_frame_resent_after_the_node_restarted_is_refused(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([("a", "b")])
    frame = asyncio.run(capture(cluster, "b", "r1", "b"))
    assert ran_once(asyncio.run(send(cluster, "b", frame, "r1")))
    cluster.procs["b"].kill()
    cluster.procs["b"].wait()
    cluster.restart("b")
    asyncio.run(cluster.configure())

    again = asyncio.run(send(cluster, "b", frame, "r1"))
    assert refusal(again) == (
        "replayed",
        "b",
        "node 'b': request 'r1' was issued before this node started; refused as a replay",
    )
    assert runs(cluster, "b") == 1


def test_a_hop_does_not_refresh_a_frame_for_a_restarted_node(
    make_cluster: Callable[..., Cluster],
) -> None:
    """b checks the frame on its clock and stamps it for c with the age it has: c, restarted
    since, sees a request issued before it started."""
    cluster = make_cluster([("a", "b"), ("b", "c")])
    frame = asyncio.run(capture(cluster, "b", "r1", "c"))
    assert ran_once(asyncio.run(send(cluster, "b", frame, "r1")))
    cluster.procs["c"].kill()
    cluster.procs["c"].wait()
    cluster.restart("c")
    asyncio.run(cluster.configure())

    again = asyncio.run(send(cluster, "b", frame, "r1"))
    (error,) = again
    assert (error["node"], error["hop"], error["code"]) == ("c", "c", "replayed")
    assert "issued before this node started" in error["message"]
    assert runs(cluster, "c") == 1


@pytest.mark.slow
def test_a_request_ages_across_hops(make_cluster: Callable[..., Cluster]) -> None:
    """A frame kept 1.6 s before it is sent is fresh for b (ttl 60 s) but not for c (ttl 1.5 s):
    b passes on its age, it does not make it new."""
    cluster = make_cluster([("a", "b"), ("b", "c")], c={"request_ttl": 1.5})

    async def main() -> list[dict[str, Any]]:
        frame = await capture(cluster, "b", "r1", "c")
        await asyncio.sleep(1.6)
        return await send(cluster, "b", frame, "r1")

    (error,) = asyncio.run(main())
    assert (error["node"], error["hop"], error["code"]) == ("c", "c", "replayed")
    assert "longer than request_ttl (1.5 s)" in error["message"]
    assert runs(cluster, "c") == 0


def test_a_duplicate_of_a_held_job_still_attaches(make_cluster: Callable[..., Cluster]) -> None:
    """Within the retention, the same frame resent is a duplicate as before: it streams the
    held job's output again and runs nothing."""
    cluster = make_cluster([("a", "b")])

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        frame = await capture(cluster, "b", "r1", "b")
        return await send(cluster, "b", frame, "r1"), await send(cluster, "b", frame, "r1")

    first, second = asyncio.run(main())
    assert ran_once(first)
    assert ran_once(second)
    assert runs(cluster, "b") == 1


def test_a_link_relearns_a_clock_estimate_that_aged(make_cluster: Callable[..., Cluster]) -> None:
    """Monotonic clocks of two hosts drift apart: an estimate CLOCK_REFRESH seconds old is
    learned again (an info round trip) before the next exec is stamped with it."""
    cluster = make_cluster([("a", "b")])
    ticks = Ticks()

    async def main() -> tuple[ExecResult, bool]:
        async with NodeClient.connect(
            cluster.url("b"), cluster.edge_token("a", "b"), name="b"
        ) as client:
            link = await client.link()
            assert link.clock is not None
            now_on_b = link.clock.stamp()["at"]
            # An estimate that has drifted 120 s behind over CLOCK_REFRESH + 1 seconds of use.
            behind = now_on_b - CLOCK_REFRESH - 1 - 120
            link.clock = PeerClock(f"{link.clock.epoch} {behind:.6f}", ticks)
            ticks.now += CLOCK_REFRESH + 1
            result = await (await client.exec("b", argv=["true"])).result()
            return result, link.clock.older_than(1.0)

    result, still_old = asyncio.run(main())
    assert result["b"].exit is not None
    assert result["b"].exit.code == 0
    assert not still_old


# The clocks and the seen ids, on injected time --------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_node_clock_refuses_unstamped_stale_foreign_and_future_stamps() -> None:
    ticks = Ticks()
    clock = NodeClock(ticks, epoch="e1")
    ticks.now += 100
    assert clock.header() == "e1 100.000000"
    peer = PeerClock(clock.header(), ticks)
    ticks.now += 5
    fresh = peer.stamp()
    assert fresh == {"epoch": "e1", "at": 105.0}
    assert clock.refusal("b", "r", fresh, 60) is None
    assert clock.age(fresh) == 0
    assert clock.refusal("b", "r", None, 60)[0] == "bad-request"  # type: ignore[index]
    assert clock.refusal("b", "r", {"epoch": "e0", "at": 105.0}, 60)[0] == "replayed"  # type: ignore[index]
    assert clock.refusal("b", "r", {"epoch": "e1", "at": -0.5}, 60)[0] == "replayed"  # type: ignore[index]
    assert clock.refusal("b", "r", {"epoch": "e1", "at": 107.0}, 60)[0] == "bad-request"  # type: ignore[index]
    ticks.now += 61
    assert clock.age(fresh) == 61
    assert clock.refusal("b", "r", fresh, 60) == (
        "replayed",
        "node 'b': request 'r' was issued 61.0 s ago, longer than request_ttl (60 s); "
        "refused as a replay",
    )
    assert peer.stamp(age=2.5) == {"epoch": "e1", "at": 163.5}
    assert peer.older_than(65)
    assert not peer.older_than(66)


@pytest.mark.parametrize("header", ["", "e1", "e1 x", "e1 nan", "e1 inf", " 1.0", "e" * 65 + " 1"])
def test_a_malformed_clock_header_is_refused(header: str) -> None:
    with pytest.raises(ProtocolError, match="Codebolt-Clock"):
        PeerClock(header)


def test_seen_requests_remember_ids_for_their_ttl_only() -> None:
    ticks = Ticks()
    seen = SeenRequests(ticks)
    assert seen.add("r1", 60)
    assert not seen.add("r1", 60)
    ticks.now += 30
    assert seen.add("r2", 60)
    ticks.now += 31  # r1 expired, r2 not yet
    assert seen.add("r1", 60)
    assert not seen.add("r2", 60)
    ticks.now += 60
    assert seen.add("r3", 60)
    assert len(seen) == 1  # expired ids are forgotten: memory follows the request rate


def test_every_daemon_start_draws_a_new_epoch() -> None:
    assert NodeClock().epoch != NodeClock().epoch
