"""The reconciler heals real topologies: crashes, hangs, and nodes that never start."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from local_topology import applied_topology, held_back_during, taken_port

from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.engine.runner import Engine
from codebolt_topo.model.state import Lifecycle
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow

#: How long the tests allow for a topology to be all RUNNING again (documented bound).
HEAL_BOUND = 20.0

FAST = """\
name: heal
heartbeat: {interval: 200ms, timeout: 200ms, suspect_after: 800ms, fail_after: 3s}
nodes:
  a: {}
  b: {restart: %s}
  c: {}
edges: [a -> b -> c]
"""


def _heal(path: Path, *, until: float, backoff_cap: float = 1.0) -> tuple[float, list[str]]:
    """Run reconciler passes until every node is RUNNING and alive; return the time it took."""
    messages: list[str] = []
    reconciler = Reconciler(
        path, report=messages.append, backoff_base=0.2, backoff_cap=backoff_cap, lock_timeout=5
    )
    start = time.monotonic()

    async def go() -> float:
        try:
            while time.monotonic() - start < until:
                report = await reconciler.pass_once()
                tracker = reconciler.health
                assert tracker is not None
                answered = all(
                    h.last_beat is not None and reconciler.clock() - h.last_beat < 1.0
                    for h in tracker.nodes.values()
                )
                if (
                    not report.applied
                    and answered
                    and all(v == "healthy" for v in report.health.values())
                ):
                    state_file = state_file_for(path, "heal")
                    state = state_file.load()
                    observed = await Engine(state_file).refresh(state)
                    if all(o.alive for o in observed.values()) and all(
                        n.lifecycle is Lifecycle.RUNNING for n in state.nodes.values()
                    ):
                        return time.monotonic() - start
                await asyncio.sleep(0.1)
            raise AssertionError(f"not healed within {until} s: {messages[-10:]}")
        finally:
            await reconciler.prober.close()

    return asyncio.run(go()), messages


def test_kill_9_of_a_middle_node_is_replaced_and_rewired(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(FAST % "on-failure")
    with applied_topology(path) as topo:
        old = topo.pids()
        os.kill(old["b"], signal.SIGKILL)
        took, messages = _heal(path, until=HEAL_BOUND)
        new = topo.pids()
        assert new["b"] != old["b"]
        assert (new["a"], new["c"]) == (old["a"], old["c"])
        assert any("b: replaced" in m and "is gone" in m for m in messages), messages
        result = topo.run("c", ["echo", "through the new b"])
        assert result["c"].stdout == b"through the new b\n"
        assert took < HEAL_BOUND


def test_a_hung_node_is_suspect_then_failed_then_replaced(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(FAST % "on-failure")
    with applied_topology(path) as topo:
        old = topo.pids()
        os.kill(old["b"], signal.SIGSTOP)
        try:
            _, messages = _heal(path, until=HEAL_BOUND)
        finally:
            if process_running(old["b"]):
                os.kill(old["b"], signal.SIGCONT)
        assert any("b: suspect" in m for m in messages), messages
        assert any("b: failed" in m for m in messages), messages
        assert topo.pids()["b"] != old["b"]
        deadline = time.monotonic() + 5
        while process_running(old["b"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_running(old["b"]), "the hung process was left behind"
        assert topo.run("c", ["true"])["c"].exit is not None


def test_restart_never_leaves_the_node_failed(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(FAST % "never")
    with applied_topology(path) as topo:
        old = topo.pids()
        os.kill(old["b"], signal.SIGKILL)
        deadline = time.monotonic() + 10  # kill(2) only queues the signal: wait for the death
        while process_running(old["b"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        reconciler = Reconciler(path)

        async def passes() -> None:
            try:
                for _ in range(3):
                    report = await reconciler.pass_once()
                    assert report.held_back.get("b") == "restart: never"
            finally:
                await reconciler.prober.close()

        asyncio.run(passes())
        assert topo.state.nodes["b"].lifecycle is Lifecycle.FAILED
        assert topo.state.nodes["b"].handle["pid"] == old["b"]


def test_a_node_that_never_starts_backs_off_without_starving_the_others(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: heal\nheartbeat: {interval: 200ms, timeout: 200ms}\n"
        "nodes: {a: {}, b: {}, c: {}}\nedges: [a -> b, a -> c]\n"
    )
    with taken_port() as port, applied_topology(path) as topo:
        old = topo.pids()
        # b will come back on a port that is taken: it can never start again.
        path.write_text(path.read_text().replace("b: {}", f"b: {{port: {port}}}"))
        os.kill(old["c"], signal.SIGKILL)
        messages: list[str] = []
        reconciler = Reconciler(path, report=messages.append, backoff_base=0.2, backoff_cap=0.8)
        held = held_back_during(reconciler, 2.0)
        assert topo.pids()["c"] != old["c"], "c was starved by b's failures"
        assert topo.run("c", ["true"])["c"].exit is not None
        failures = [m for m in messages if m.startswith("b: start failed")]
        assert len(failures) >= 2, messages
        assert any(h.startswith("b: backing off") for h in held), held


def test_stream_survives_kill_9_of_the_forwarding_node_while_watch_heals(tmp_path: Path) -> None:
    """The whole story: a streams from c through b; b is killed mid-stream; the reconciler
    replaces b and re-points a; the client resumes from its offsets; the bytes are identical."""
    import hashlib

    from codebolt_topo.client import Exit, NodeClient, Output

    path = tmp_path / "topology.yaml"
    path.write_text(FAST % "on-failure")
    script = "for i in $(seq 1 60); do seq 1 2000; sleep 0.05; done"
    reference = b"".join(f"{n}\n".encode() for n in range(1, 2001)) * 60
    with applied_topology(path) as topo:
        entry = topo.state.nodes["a"]
        victim = topo.pids()["b"]
        assert entry.url is not None
        url, token = entry.url, entry.admin_token

        async def go() -> tuple[bytes, list[Exit], list[str]]:
            stop = asyncio.Event()
            messages: list[str] = []
            watcher = asyncio.create_task(
                Reconciler(path, report=messages.append, backoff_base=0.2).run(stop)
            )
            received = bytearray()
            exits: list[Exit] = []
            killed = False
            try:
                async with NodeClient.connect(url, token, name="a", retries=12) as client:
                    async for event in await client.exec("c", shell=script):
                        if isinstance(event, Output):
                            received += event.data
                            if not killed and len(received) > 100_000:
                                os.kill(victim, signal.SIGKILL)
                                killed = True
                        elif isinstance(event, Exit):
                            exits.append(event)
            finally:
                stop.set()
                await watcher
            return bytes(received), exits, messages

        received, exits, messages = asyncio.run(go())
        assert hashlib.sha256(received).hexdigest() == hashlib.sha256(reference).hexdigest()
        assert [e.code for e in exits] == [0]  # exactly once
        assert any("b: replaced" in m for m in messages), messages
        assert topo.pids()["b"] != victim
