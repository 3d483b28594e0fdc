"""Every seed shape applied for real on the local provider, commands routed across it."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from local_topology import applied_topology, copy_example

from codebolt_topo.client import Exit, NodeClient, Started
from codebolt_topo.engine.operations import apply_topology, plan_topology
from codebolt_topo.plan.diff import ActionKind
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("shape", ["linear", "fan-out", "tree", "mesh", "hub"])
def test_seed_shape_routes_a_command_to_the_farthest_node(shape: str, tmp_path: Path) -> None:
    path = copy_example(shape, tmp_path)
    with applied_topology(path) as topo:
        graph = topo.validated.graph
        entry = graph.entries()[0]
        farthest = graph.farthest_from(entry)
        assert farthest is not None
        result = topo.run(farthest, ["sh", "-c", 'printf "%s\\n" "$CODEBOLT_NODE"; exit 7'])
        assert result[farthest].stdout == f"{farthest}\n".encode()
        assert result[farthest].exit is not None
        assert result[farthest].exit.code == 7
        assert plan_topology(path).has_changes is False


def test_fan_out_reaches_every_leaf_at_once(tmp_path: Path) -> None:
    path = copy_example("fan-out", tmp_path)
    with applied_topology(path) as topo:
        leaves = ["b", "c", "d"]
        start = time.monotonic()
        result = topo.run(leaves, ["sh", "-c", 'sleep 0.5; echo "$CODEBOLT_NODE"'])
        elapsed = time.monotonic() - start
        assert {leaf: result[leaf].stdout for leaf in leaves} == {
            leaf: f"{leaf}\n".encode() for leaf in leaves
        }
        # Run at once, not one after the other: three 0.5 s sleeps in well under 1.5 s.
        assert elapsed < 1.4


def test_request_into_a_mesh_with_a_cycle_terminates(tmp_path: Path) -> None:
    path = copy_example("mesh", tmp_path)
    with applied_topology(path) as topo:
        for target in ("a", "b", "c"):
            for entry in ("a", "b", "c"):
                result = topo.run(target, ["true"], entry=entry)
                assert result[target].exit is not None
                assert result[target].exit.code == 0


def test_cancel_mid_stream_kills_the_process_group_on_the_far_node(tmp_path: Path) -> None:
    path = copy_example("linear", tmp_path)
    with applied_topology(path) as topo:
        entry = topo.state.nodes["a"]
        assert entry.url is not None

        async def go() -> tuple[int, bytes, Exit]:
            async with NodeClient.connect(entry.url, entry.admin_token) as client:  # type: ignore[arg-type]
                handle = await client.exec(
                    "d", shell="sleep 300 & echo $!; while true; do echo tick; sleep 0.05; done"
                )
                child, seen, exit_event = 0, b"", None
                async for event in handle:
                    if isinstance(event, Started):
                        assert event.path == ["a", "b", "c", "d"]
                    elif hasattr(event, "data") and isinstance(event.data, bytes):
                        seen += event.data
                        if not child and b"\n" in seen:
                            child = int(seen.split(b"\n")[0])
                        if seen.count(b"tick") == 3:
                            await handle.cancel()
                    elif isinstance(event, Exit):
                        exit_event = event
                assert exit_event is not None
                return child, seen, exit_event

        child, seen, exit_event = asyncio.run(go())
        assert exit_event.cancelled
        assert seen.count(b"tick") >= 3
        deadline = time.monotonic() + 5
        while process_running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_running(child), "the background child of the cancelled job survived"


def test_reapply_after_edit_moves_only_the_delta(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: grow\nnodes: {a: {}, b: {}, c: {}}\nedges: [a -> b, b -> c]\n")
    with applied_topology(path) as topo:
        before = topo.pids()
        serial = topo.state.serial
        apply_topology(path)  # nothing changed: nothing written, the serial stays
        assert topo.state.serial == serial
        path.write_text(
            "name: grow\nnodes: {a: {}, b: {}, c: {}, d: {}}\nedges: [a -> b, b -> c, c -> d]\n"
        )
        plan = plan_topology(path)
        assert [a.node for a in plan.of_kind(ActionKind.CREATE)] == ["d"]
        assert plan.of_kind(ActionKind.REPLACE, ActionKind.DELETE) == []
        apply_topology(path)
        after = topo.pids()
        assert {n: after[n] for n in before} == before
        result = topo.run("d", ["echo", "grown"])
        assert result["d"].stdout == b"grown\n"

        path.write_text("name: grow\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n")
        apply_topology(path)
        final = topo.pids()
        assert final == {"a": before["a"], "b": before["b"]}
        assert not process_running(after["c"])
        assert not process_running(after["d"])


def test_destroy_frees_the_ports(tmp_path: Path) -> None:
    path = copy_example("linear", tmp_path)
    with applied_topology(path) as topo:
        ports = [node.port for node in topo.state.nodes.values()]
    for port in ports:
        assert port is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert sorted(os.listdir(tmp_path / ".codebolt")) == [
        ".gitignore",
        "linear.key",  # the state key (issue 16): kept, the state still holds sealed tokens
        "linear.lock",
        "linear.state.json",
    ]
