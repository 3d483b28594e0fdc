"""Heartbeats against a hung node; heartbeat settings per topology and per node; restart
policies as the reconciler applies them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.memory import MemoryProvider
from codebolt_topo.testing import ADMIN_TOKEN, Cluster


@pytest.mark.slow
def test_a_hung_node_does_not_hold_up_the_heartbeat_round(tmp_path: Path) -> None:
    """A SIGSTOPped daemon accepts TCP and never answers, not even a WebSocket close: each
    probe and the prober's close must still end within about the heartbeat timeout (they used
    to wait for the transport's 20 s close timeout, stalling every other node's heartbeats)."""
    cluster = Cluster(tmp_path, [], ["a"]).start()
    node = NodeState(
        name="a",
        provider="local",
        admin_token=ADMIN_TOKEN,
        launch_hash="h",
        host="127.0.0.1",
        port=cluster.ports["a"],
    )
    try:

        async def go() -> list[float]:
            prober = HeartbeatProber()
            took = []
            assert await prober.probe(node, 0.3) is None  # a connection is now kept open
            os.kill(cluster.pids["a"], signal.SIGSTOP)
            for _ in range(2):
                start = time.monotonic()
                error = await prober.probe(node, 0.3)
                took.append(time.monotonic() - start)
                assert error == "no answer within 0.3 s"
            start = time.monotonic()
            await prober.close()
            took.append(time.monotonic() - start)
            return took

        took = asyncio.run(go())
        assert max(took) < 1.5, took
    finally:
        os.kill(cluster.pids["a"], signal.SIGCONT)
        cluster.stop()


class _Answering(HeartbeatProber):
    """Every heartbeat answers at once (the memory provider's nodes have no daemon)."""

    async def probe(self, node: NodeState, timeout: float) -> str | None:
        return None


def _simulate(path: Path, name: str) -> MemoryProvider:
    """Record every node of ``path`` as RUNNING and configured on a memory provider."""
    desired = desired_nodes(validate_file(path))
    state_file = state_file_for(path, name)
    state = State(topology=name)
    provider = MemoryProvider(
        ProviderContext(topology=name, lineage=state.lineage, runtime_dir=state_file.runtime_dir)
    )
    for node_name, node in desired.items():
        provider.alive[len(provider.alive) + 1] = node_name
        state.nodes[node_name] = NodeState(
            name=node_name,
            provider="local",
            lifecycle=Lifecycle.RUNNING,
            handle={"id": len(provider.alive)},
            host="127.0.0.1",
            port=1,
            admin_token="t",
            launch=node.launch_settings,
            launch_hash=node.launch_hash,
            runtime_hash="pushed",
            wiring=json.loads(json.dumps(node.wiring)),
        )
    with state_file.locked("test"):
        state_file.save(state)
    return provider


def test_heartbeat_settings_apply_per_topology_and_per_node(tmp_path: Path) -> None:
    """The topology's heartbeat is every node's default; a node's own block overrides it, for
    the reconciler's verdicts and for the keepalive pushed to the node's links."""
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps(
            {
                "name": "beat",
                "heartbeat": {"interval": "2s", "timeout": "500ms"},
                "nodes": {
                    "a": {},
                    "b": {
                        "heartbeat": {"interval": "300ms", "timeout": "100ms", "fail_after": "5s"}
                    },
                },
                "edges": ["a -> b"],
            }
        )
    )
    validated = validate_file(path)
    desired = desired_nodes(validated)
    assert desired["a"].keepalive == (2.0, 0.5)
    assert desired["b"].keepalive == (0.3, 0.1)
    provider = _simulate(path, "beat")
    state_file = state_file_for(path, "beat")
    reconciler = Reconciler(path, providers={"local": provider}, prober=_Answering())
    serial = state_file.load().serial

    async def passes() -> None:
        for _ in range(3):
            report = await reconciler.pass_once()
            assert not report.applied
            assert set(report.health.values()) == {"healthy"}

    asyncio.run(passes())
    assert reconciler.health is not None
    specs = {name: health.spec for name, health in reconciler.health.nodes.items()}
    assert (specs["a"].interval, specs["a"].suspect_deadline, specs["a"].fail_deadline) == (
        2.0,
        3 * 2.0 + 0.5,
        3 * 2.0 + 0.5 + 2 * 2.0,
    )
    assert (specs["b"].interval, specs["b"].suspect_deadline, specs["b"].fail_deadline) == (
        0.3,
        3 * 0.3 + 0.1,
        5.0,
    )
    assert Reconciler._tick(validated) == pytest.approx(0.15)  # half the shortest interval
    assert state_file.load().serial == serial  # passes that change nothing write nothing


@pytest.mark.parametrize(
    ("policy", "how", "replaced"),
    [
        ("never", "crash", False),
        ("on-failure", "crash", True),
        ("always", "crash", True),
        ("never", "stop", False),
        ("on-failure", "stop", False),
        ("always", "stop", True),
    ],
)
def test_restart_policy_decides_whether_a_dead_node_is_replaced(
    policy: str, how: str, replaced: bool, tmp_path: Path
) -> None:
    """A node that crashed is FAILED in the state, one stopped on request STOPPED; ``never``
    leaves either so, ``on-failure`` replaces only the crashed one, ``always`` both."""
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps(
            {"name": "pol", "nodes": {"a": {}, "b": {"restart": policy}}, "edges": ["a -> b"]}
        )
    )
    provider = _simulate(path, "pol")
    provider.kill("b") if how == "crash" else provider.stop("b")
    reconciler = Reconciler(path, providers={"local": provider}, prober=_Answering())
    report = asyncio.run(reconciler.pass_once())
    state = state_file_for(path, "pol").load()
    if replaced:
        assert [(a.node, a.kind.value) for a in report.applied if a.node == "b"] == [
            ("b", "replace")
        ]
        assert "b" not in report.held_back
        assert "b" in provider.alive.values()
        return
    expected = (
        "restart: never"
        if policy == "never"
        else ("restart: on-failure, and it was stopped on request")
    )
    assert report.held_back == {"b": expected}
    lifecycle = Lifecycle.FAILED if how == "crash" else Lifecycle.STOPPED
    assert state.nodes["b"].lifecycle is lifecycle
    assert state.nodes["b"].history[-1].state is lifecycle
    assert "b" not in provider.alive.values()
    again = asyncio.run(reconciler.pass_once())  # level-triggered: the next pass agrees
    assert again.held_back == {"b": expected}
    assert all(action.node != "b" for action in again.applied)
