"""An edge whose sender cannot address its peer is reported, never silently left unwired."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codebolt_topo.engine.operations import _plan, state_file_for
from codebolt_topo.engine.runner import ApplyError, Engine
from codebolt_topo.model.state import NodeState
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.local.provider import LocalProvider

pytestmark = pytest.mark.slow


class Island(LocalProvider):
    """Local nodes that, like a host behind a one-way tunnel, cannot address anyone."""

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        return None


def test_an_unaddressable_peer_fails_the_apply_naming_the_edge(tmp_path: Path) -> None:
    path = tmp_path / "island.yaml"
    path.write_text("name: island\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n")
    validated = validate_file(path)
    state_file = state_file_for(path, "island")

    async def run() -> str:
        state = state_file.load()
        context = ProviderContext("island", state.lineage, state_file.runtime_dir, tmp_path)
        engine = Engine(state_file, providers={"local": Island(context)})
        try:
            plan = await _plan(engine, validated, state)
            with pytest.raises(ApplyError) as caught:
                await engine.apply(plan, state)
            # Both nodes run: the failure is the edge, not a node.
            assert set(state.nodes) == {"a", "b"}
            return str(caught.value)
        finally:
            await engine.destroy(state)

    with state_file.locked("apply"):
        message = asyncio.run(run())
    assert "edge a -> b: a local node cannot reach b (local at ws://127.0.0.1:" in message
    assert "node 'b'" not in message
