"""Issue 12, findings 2 and 10, on real daemons: one edge token cannot exhaust a node.

A peer holding only the a->b edge token hammers b with thousands of malformed requests (NUL
bytes in argv, env and shell, bad shapes, a list of 20,000 targets, unstamped and stale frames,
commands that cannot start). Every one is answered, b's descriptors come back to their baseline,
no job stays behind, exec from another peer (c) works during and after, and node.log holds a
few lines and a count instead of one line per refusal.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from codebolt_topo.client import ExecResult
from codebolt_topo.testing import Cluster, RawPeer
from codebolt_topo.wire.codec import encode

pytestmark = pytest.mark.slow
ROUNDS = 150
SUMMARY = re.compile(r"(\d+) more like this in the last \d+ s: ")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def malformed(peer: RawPeer, n: int) -> list[tuple[str | bytes, str | None, str]]:
    """Round ``n`` of the hammer: (frame, id its answer carries or None, expected code)."""
    p = f"h{n}-"
    shapes: list[tuple[str | bytes | dict[str, Any], str | None, str]] = [
        (peer.exec(p + "argv", "b", argv=["echo", "a\0b"]), p + "argv", "bad-request"),
        (peer.exec(p + "envv", "b", env={"X": "a\0b"}), p + "envv", "bad-request"),
        (peer.exec(p + "envk", "b", env={"X\0Y": "1"}), p + "envk", "bad-request"),
        (peer.exec(p + "enveq", "b", env={"A=B": "1"}), p + "enveq", "bad-request"),
        (peer.exec(p + "shell", "b", argv=None, shell="echo \0"), p + "shell", "bad-request"),
        (peer.exec(p + "cwd", "b", cwd="x\0y"), p + "cwd", "bad-request"),
        (peer.exec(p + "argt", "b", argv="true"), p + "argt", "bad-request"),
        (peer.exec(p + "unstamped", "b", issued=None), p + "unstamped", "bad-request"),
        (
            peer.exec(p + "stale", "b", issued={"epoch": "0" * 16, "at": 1.0}),
            p + "stale",
            "replayed",
        ),
        (peer.exec(p + "missing", "b", argv=["/no/such/command"]), p + "missing", "not-found"),
        (peer.exec(p + "nocwd", "b", cwd="no/such/dir"), p + "nocwd", "spawn-failed"),
        (peer.exec(p + "many", [f"n{i}" for i in range(20_000)]), p + "many", "over-limit"),
        (peer.exec("x" * 600, "b"), None, "bad-request"),
        (
            '{"t": "exec", "id": "' + p + 'nan", "target": "b", "argv": ["true"], "timeout": NaN}',
            p + "nan",
            "bad-request",
        ),
        ("{not json", None, "bad-request"),
        ('{"t": "bogus"}', None, "bad-request"),
        (b"\x01\x00", None, "bad-request"),
    ]
    frames: list[tuple[str | bytes, str | None, str]] = []
    for frame, rid, code in shapes:
        if isinstance(frame, dict):
            frame = json.dumps({k: v for k, v in frame.items() if v is not None})
        frames.append((frame, rid, code))
    assert len(frames) == len(SHAPES)
    return frames


SHAPES = (
    "argv",
    "envv",
    "envk",
    "enveq",
    "shell",
    "cwd",
    "argt",
    "unstamped",
    "stale",
    "missing",
    "nocwd",
    "many",
    "long-id",
    "nan",
    "not-json",
    "bogus",
    "binary",
)


@dataclass
class Hammered:
    frames: int = 0
    expected: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    anonymous: list[dict[str, Any]] = field(default_factory=list)
    baseline: int = 0
    peak: int = 0
    after: int = 0
    job_states: dict[str, int] = field(default_factory=dict)
    other_peer: list[ExecResult] = field(default_factory=list)
    log: str = ""


async def _hammer(cluster: Cluster, result: Hammered) -> None:
    pid = cluster.pids["b"]
    async with cluster.client("c") as via_c:
        warm = await (await via_c.exec("b", argv=["true"])).result()  # c's link to b is open
        assert warm["b"].exit is not None
        result.baseline = descriptors(pid)
        async with RawPeer.connect(cluster.url("b"), cluster.edge_token("a", "b")) as peer:
            frames = [f for n in range(ROUNDS) for f in malformed(peer, n)]
            result.frames = len(frames)
            result.expected = {rid: code for _, rid, code in frames if rid is not None}
            anonymous = len(frames) - len(result.expected)

            async def receive() -> None:
                open_ids = set(result.expected)
                async for frame in peer.ws:
                    message = json.loads(frame)
                    if message.get("id") is None:
                        result.anonymous.append(message)
                    else:
                        result.answers.setdefault(message["id"], []).append(message)
                        if message.get("done"):
                            open_ids.discard(message["id"])
                    if not open_ids and len(result.anonymous) >= anonymous:
                        return

            async def send() -> None:
                for i, (frame, _, _) in enumerate(frames):
                    await peer.ws.send(frame)
                    if i % 200 == 0:
                        result.peak = max(result.peak, descriptors(pid))

            receiver = asyncio.ensure_future(receive())
            during = asyncio.ensure_future(via_c.exec("b", shell="echo during"))
            await send()
            result.other_peer.append(await (await during).result())
            await asyncio.wait_for(receiver, 60)
        result.other_peer.append(await (await via_c.exec("b", shell="echo after")).result())
        for _ in range(100):  # the node learns of the closed connection asynchronously
            result.after = descriptors(pid)
            if result.after <= result.baseline:
                break
            await asyncio.sleep(0.1)
    async with cluster.client("b") as admin:
        result.job_states = (await admin.info())["job_states"]


@pytest.fixture(scope="module")
def hammered(tmp_path_factory: pytest.TempPathFactory) -> Hammered:
    root = tmp_path_factory.mktemp("hammer")
    cluster = Cluster(root, [("a", "b"), ("c", "b")]).start()
    result = Hammered()
    try:
        asyncio.run(cluster.configure())
        asyncio.run(_hammer(cluster, result))
    finally:
        cluster.stop()  # a graceful stop: the log's summaries are written at exit
    result.log = (root / "b" / "daemon.log").read_text()
    return result


def test_every_malformed_request_gets_one_answer(hammered: Hammered) -> None:
    assert hammered.frames >= 2500
    for rid, code in hammered.expected.items():
        got = hammered.answers[rid]
        assert [(m["t"], m["code"], m.get("done")) for m in got] == [("error", code, True)], rid
        assert "'b'" in got[0]["message"] or code == "bad-request", got[0]
    assert {m["code"] for m in hammered.anonymous} == {"bad-request"}


def test_nul_bytes_are_refused_naming_the_field(hammered: Hammered) -> None:
    messages = {
        rid.split("-", 1)[1]: got[0]["message"]
        for rid, got in hammered.answers.items()
        if rid.startswith("h0-")
    }
    assert "NUL" in messages["argv"]
    assert "'env' values" in messages["envv"]
    assert "'env' names" in messages["envk"]
    assert "'env' names" in messages["enveq"]
    assert "NUL" in messages["shell"]
    assert "'cwd'" in messages["cwd"]
    assert "'timeout'" in messages["nan"]


def test_twenty_thousand_targets_cost_one_error_naming_the_limit(hammered: Hammered) -> None:
    (refused,) = hammered.answers["h0-many"]
    assert refused["node"] is None
    assert refused["hop"] == "b"
    assert refused["message"] == (
        "node 'b': request 'h0-many' names 20000 targets, over limits.targets = 1024"
    )


def test_descriptors_return_to_their_baseline_and_no_job_stays(hammered: Hammered) -> None:
    assert hammered.after <= hammered.baseline, (hammered.baseline, hammered.peak)
    assert hammered.peak < hammered.baseline + 50
    assert hammered.job_states["running"] == 0
    assert hammered.job_states["detached"] == 0


def test_another_peer_execs_during_and_after_the_hammer(hammered: Hammered) -> None:
    during, after = hammered.other_peer
    assert during["b"].stdout == b"during\n"
    assert during["b"].exit is not None
    assert during["b"].exit.code == 0
    assert after["b"].stdout == b"after\n"


def test_repeated_refusals_are_summed_up_in_node_log(hammered: Hammered) -> None:
    lines = hammered.log.splitlines()
    refusals = [line for line in lines if " refused (" in line]
    summaries = [m for line in refusals if (m := SUMMARY.search(line))]
    assert summaries
    assert len(refusals) < 100, len(refusals)
    # Every refusal is accounted for: written in full, or counted in a summary. Per round, all
    # shapes but the two commands that fail to start are refused (those are not logged).
    written = len(refusals) - len(summaries)
    assert written + sum(int(m[1]) for m in summaries) == (len(SHAPES) - 2) * ROUNDS


def test_a_node_answers_a_request_it_cannot_decode_with_its_id(
    make_cluster: Callable[..., Cluster],
) -> None:
    """The Python client's request ends with the error instead of waiting forever."""
    cluster = make_cluster([("a", "b")])

    async def main() -> list[dict[str, Any]]:
        async with RawPeer.connect(cluster.url("b"), cluster.edge_token("a", "b")) as peer:
            await peer.ws.send(encode(peer.exec("r1", "b", argv=["echo", "\0"])))
            return await peer.until_done("r1")

    (answer,) = asyncio.run(main())
    assert (answer["code"], answer["hop"], answer["done"]) == ("bad-request", "b", True)


def test_a_refused_request_reusing_a_live_id_does_not_end_the_live_one(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A refusal carries the request's id and done; for an id live on the connection it would
    end that request at its caller, so it is answered as a bad frame (id null) instead."""
    cluster = make_cluster([("a", "b")])

    async def main() -> list[dict[str, Any]]:
        async with RawPeer.connect(cluster.url("b"), cluster.edge_token("a", "b")) as peer:
            await peer.ws.send(encode(peer.exec("r1", "b", argv=["sleep", "0.3"])))
            await peer.ws.send(encode(peer.exec("r1", [f"n{i}" for i in range(2000)])))
            seen: list[dict[str, Any]] = []
            async for frame in peer.ws:
                seen.append(json.loads(frame))
                if seen[-1].get("done"):
                    return seen
            raise AssertionError("connection closed")

    seen = asyncio.run(asyncio.wait_for(main(), 30))
    assert sorted(m["t"] for m in seen) == ["error", "exit", "started"]
    (refused,) = [m for m in seen if m["t"] == "error"]
    assert (refused["id"], refused["code"]) == (None, "bad-request")
    assert "already in use on this connection" in refused["message"]
    assert (seen[-1]["t"], seen[-1]["id"], seen[-1]["code"]) == ("exit", "r1", 0)
