"""hybrid: first placement that offers the requirements, has room and starts the node wins."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.nodes import node_model
from codebolt_topo.model.state import NodeState
from codebolt_topo.providers.base import NodeLaunch, Placement, ProviderContext
from codebolt_topo.providers.hybrid.provider import HybridProvider
from codebolt_topo.providers.memory import MemoryProvider
from codebolt_topo.wire.config import LaunchConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli"))
from local_topology import applied_topology, taken_port

NodeSpec = node_model()  # with the installed providers' settings


class Broken(MemoryProvider):
    """A provider whose every create fails, as a provider out of quota would."""

    async def create(self, launch: NodeLaunch) -> Placement:
        raise ProviderError("quota exceeded")


class Full(MemoryProvider):
    async def has_room(self, spec: NodeSpec) -> bool:
        return False


def _hybrid(tmp_path: Path, **delegates: MemoryProvider) -> HybridProvider:
    return HybridProvider(ProviderContext("t", "l", tmp_path / "rt", tmp_path), delegates)


def _context(tmp_path: Path) -> ProviderContext:
    return ProviderContext("t", "l", tmp_path / "rt", tmp_path)


def _launch(name: str, **spec: Any) -> NodeLaunch:
    config = LaunchConfig(
        topology="t", node=name, admin_token_digest="0" * 64, workspace="/tmp", state_dir="/tmp"
    )
    return NodeLaunch(name, NodeSpec.model_validate({"provider": "hybrid", **spec}), config)


def test_first_entry_with_the_capability_places_the_node(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    laptop, cloud = MemoryProvider(ctx), MemoryProvider(ctx)
    hybrid = _hybrid(tmp_path, laptop=laptop, cloud=cloud)
    launch = _launch(
        "train",
        requires=["gpu"],
        placement=["laptop", {"provider": "cloud", "overrides": {"capabilities": ["gpu"]}}],
    )
    placement = asyncio.run(hybrid.create(launch))
    assert placement.handle["placed_on"] == "cloud"
    assert placement.handle["placement"] == 1
    assert list(cloud.alive.values()) == ["train"]
    assert laptop.alive == {}
    assert hybrid.offers(launch.spec)[0] >= {"gpu"}


def test_max_nodes_then_spill_to_the_next(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    laptop, docker = MemoryProvider(ctx), MemoryProvider(ctx)
    hybrid = _hybrid(tmp_path, laptop=laptop, docker=docker)
    placement = [{"provider": "laptop", "max_nodes": 2}, "docker"]

    async def place_all() -> list[Placement]:
        return list(
            await asyncio.gather(
                *(hybrid.create(_launch(f"w{i}", placement=placement)) for i in range(5))
            )
        )

    placed = asyncio.run(place_all())
    assert sorted(p.handle["placed_on"] for p in placed) == ["docker"] * 3 + ["laptop"] * 2
    assert len(laptop.alive) == 2


def test_full_or_failing_providers_fall_through(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    last = MemoryProvider(ctx)
    hybrid = _hybrid(tmp_path, full=Full(ctx), broken=Broken(ctx), last=last)
    placement = asyncio.run(hybrid.create(_launch("a", placement=["full", "broken", "last"])))
    assert placement.handle["placed_on"] == "last"
    handle = placement.handle
    assert asyncio.run(hybrid.inspect(handle)).alive
    last.kill("a")
    assert not asyncio.run(hybrid.inspect(handle)).alive
    asyncio.run(hybrid.destroy(handle))


def test_every_refusal_is_reported(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    hybrid = _hybrid(tmp_path, full=Full(ctx), broken=Broken(ctx), plain=MemoryProvider(ctx))
    launch = _launch(
        "a",
        requires=["browser"],
        placement=[
            {"provider": "full", "overrides": {"capabilities": ["browser"]}},
            {"provider": "broken", "overrides": {"capabilities": ["browser"]}},
            "plain",
        ],
    )
    with pytest.raises(ProviderError) as caught:
        asyncio.run(hybrid.create(launch))
    message = str(caught.value)
    assert "full: no room" in message
    assert "broken: quota exceeded" in message
    assert "plain: lacks browser" in message


def test_discovered_handles_match_recorded_ones(tmp_path: Path) -> None:
    """A node hybrid placed is recognised by its provider's own discovery (no orphan)."""
    ctx = _context(tmp_path)
    laptop = MemoryProvider(ctx)
    hybrid = _hybrid(tmp_path, laptop=laptop)
    handle = asyncio.run(hybrid.create(_launch("a", placement=["laptop"]))).handle
    found = asyncio.run(hybrid.discover())
    assert [item.node for item in found] == ["a"]
    assert found[0].same_as(handle)
    asyncio.run(hybrid.destroy(found[0].handle))
    assert laptop.alive == {}


def test_peer_url_unwraps_hybrid_peers(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    hybrid = _hybrid(tmp_path, laptop=MemoryProvider(ctx))
    handle = asyncio.run(hybrid.create(_launch("a", placement=["laptop"]))).handle
    peer = NodeState(
        name="a",
        provider="hybrid",
        admin_token="x",
        launch={},
        launch_hash="h",
        handle=handle,
        host="127.0.0.1",
        port=20000,
    )
    assert hybrid.peer_url(peer) == "ws://127.0.0.1:20000"


class Island(MemoryProvider):
    """Nodes that reach nobody (a host behind a one-way tunnel)."""

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        return None


def test_peer_url_asks_the_provider_that_placed_the_sender(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    hybrid = _hybrid(tmp_path, laptop=MemoryProvider(ctx), island=Island(ctx))

    def placed(name: str, on: str) -> NodeState:
        handle = asyncio.run(hybrid.create(_launch(name, placement=[on]))).handle
        return NodeState(
            name=name,
            provider="hybrid",
            admin_token="x",
            launch={},
            launch_hash="h",
            handle=handle,
            host="127.0.0.1",
            port=20000,
        )

    peer, on_laptop, on_island = placed("p", "laptop"), placed("a", "laptop"), placed("b", "island")
    assert hybrid.peer_url(peer, on_laptop) == "ws://127.0.0.1:20000"
    assert hybrid.peer_url(peer, on_island) is None
    # Without the sender, delegates disagree: no URL rather than a wrong one.
    assert hybrid.peer_url(peer) is None


def test_placement_settings_are_validated() -> None:
    with pytest.raises(ValueError, match=r"placement\[0\]: image"):
        NodeSpec.model_validate(
            {
                "provider": "hybrid",
                "placement": [{"provider": "local", "overrides": {"image": "x"}}],
            }
        )
    with pytest.raises(ValueError, match="belong to the node"):
        NodeSpec.model_validate(
            {
                "provider": "hybrid",
                "placement": [{"provider": "local", "overrides": {"requires": ["gpu"]}}],
            }
        )
    with pytest.raises(ValueError, match="only provider: hybrid"):
        NodeSpec.model_validate({"placement": ["local"]})


@pytest.mark.slow
def test_real_local_nodes_fall_back_when_the_port_is_taken(tmp_path: Path) -> None:
    with taken_port() as port:
        path = tmp_path / "topology.yaml"
        path.write_text(
            "name: spill\nnodes:\n  a: {}\n  b:\n    provider: hybrid\n    placement:\n"
            f"      - {{provider: local, overrides: {{port: {port}}}}}\n      - local\n"
            "edges:\n  - a -> b\n"
        )
        with applied_topology(path) as applied:
            b = applied.state.nodes["b"]
            assert b.handle["placed_on"] == "local"
            assert b.handle["placement"] == 1
            assert b.port != port
            assert applied.run("b", ["echo", "spilled"])["b"].stdout == b"spilled\n"


CAPPED = """\
name: capped
nodes:
  a: {}
  w:
    provider: hybrid
    count: 3
    placement:
      - {provider: local, max_nodes: 3, overrides: {env: {WHERE: first}}}
{more}edges: [a -> w]
"""
SPILL = "      - {provider: local, overrides: {env: {WHERE: second}}}\n"


def _capped(more: str = "", cap: int = 3) -> str:
    return CAPPED.replace("{more}", more).replace("max_nodes: 3", f"max_nodes: {cap}")


def test_plan_forecasts_where_each_replica_goes(tmp_path: Path) -> None:
    """Issue 17, item 4: a's local node counts towards the local entry's max_nodes (this
    topology's nodes on that provider), so w-1 and w-2 fit there and w-3 spills over."""
    from codebolt_topo.engine.operations import plan_topology
    from codebolt_topo.plan.render import plan_as_json, plan_as_text

    path = tmp_path / "topology.yaml"
    path.write_text(_capped(SPILL))
    plan = plan_topology(path)
    assert {name: (f.provider, f.entry) for name, f in plan.placements.items()} == {
        "w-1": ("local", 0),
        "w-2": ("local", 0),
        "w-3": ("local", 1),
    }
    assert plan.placements["w-3"].refusals == ("local: no room (max_nodes 3, 3 placed or planned)",)
    text = plan_as_text(plan)
    assert "    + w-3  (hybrid) create\n        placed on: local (placement[1])\n" in text
    assert plan_as_json(plan)["nodes"]["w-1"]["placement"] == {
        "provider": "local",
        "entry": 0,
        "refusals": [],
    }


def test_plan_refuses_what_no_placement_can_take_at_the_placement(tmp_path: Path) -> None:
    """It used to plan "4 to create" and fail two nodes at apply."""
    from cli_helpers import codebolt

    (tmp_path / "topology.yaml").write_text(_capped(cap=2))
    result = codebolt("plan", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: topology.yaml:8:7: nodes.w.placement: node {node!r} cannot be placed: "
        "local: no room (max_nodes 2, 2 placed or planned); hint: raise a max_nodes, add a "
        "placement entry, or lower count"
        for node in ("w-2", "w-3")
    ]
    assert not (tmp_path / ".codebolt" / "capped").exists(), "plan started nothing"


@pytest.mark.slow
def test_apply_places_each_node_where_the_plan_said(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(_capped(SPILL))
    with applied_topology(path) as applied:
        nodes = applied.state.nodes
        assert [nodes[f"w-{i}"].handle["placement"] for i in (1, 2, 3)] == [0, 0, 1]
        where = applied.run(["w-1", "w-3"], ["sh", "-c", "echo $WHERE"])
        assert (where["w-1"].stdout, where["w-3"].stdout) == (b"first\n", b"second\n")
        assert not plan_topology_changes(path)


def plan_topology_changes(path: Path) -> bool:
    from codebolt_topo.engine.operations import plan_topology

    return plan_topology(path).has_changes
