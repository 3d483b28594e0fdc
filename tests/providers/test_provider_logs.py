"""The logs hook every provider has (issue 17, item 1): a provider that does not read its nodes'
logs says so, and ``codebolt logs`` names the node and the provider instead of an empty log.
The providers that do (docker, cloud-vm, e2b, hybrid) are tested against real containers, an
OpenSSH server and the e2b stand-in in their own suites."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.providers.base import LogsNotOffered, ProviderContext
from codebolt_topo.providers.memory import MemoryProvider


def test_by_default_a_provider_does_not_offer_logs(tmp_path: Path) -> None:
    provider = MemoryProvider(ProviderContext("t", "l", tmp_path))

    async def read() -> list[str]:
        return [line async for line in provider.logs({"id": 1}, follow=False)]

    with pytest.raises(LogsNotOffered, match="provider 'memory' does not offer its nodes' logs"):
        asyncio.run(read())


def test_logs_of_a_node_whose_provider_has_none_name_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebolt_topo.engine.logs import node_log
    from codebolt_topo.engine.runner import Engine
    from codebolt_topo.engine.statefile import StateFile

    path = tmp_path / "topology.yaml"
    path.write_text("name: away\nnodes: {box: {}}\n")
    state = State(topology="away")
    state.nodes["box"] = NodeState(
        name="box", provider="memory", admin_token="t", launch_hash="h", handle={"id": 1}
    )
    state_file = StateFile(tmp_path / ".codebolt", "away")
    with state_file.locked("test"):
        state_file.save(state)
    memory = MemoryProvider(ProviderContext("away", state.lineage, tmp_path))
    monkeypatch.setattr(Engine, "provider", lambda self, name, state: memory)

    async def read() -> list[str]:
        return [line.text async for line in node_log(path, "box")]

    with pytest.raises(ConfigError, match="node 'box' runs on provider 'memory', whose logs stay"):
        asyncio.run(read())
