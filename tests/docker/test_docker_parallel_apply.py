"""Docker nodes created and started at once (the provider holds its network lock only while it
decides and makes networks): each still gets its own working endpoint, every container joins
the sandbox network a sandbox node started beside them brings, and destroy leaves nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import client, containers_of, labelled_leftovers, state_of

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology
from codebolt_topo.engine.runner import PARALLEL_STARTS

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WORKERS = ["b", "c", "d", "e", "f", "g"]
# Eight nodes, as many as the engine starts at once: they all race each other.
_WORKER_LINES = "".join(f"  {w}: {{provider: docker}}\n" for w in WORKERS)
TOPOLOGY = f"""name: par
entry: a
nodes:
  a: {{provider: docker}}
{_WORKER_LINES}  s: {{provider: docker, sandbox: true}}
edges:
  - fan-out: {{root: a, leaves: [{", ".join(WORKERS)}, s]}}
"""


async def _whoami(url: str, token: str, targets: list[str]) -> dict[str, bytes]:
    async with NodeClient.connect(url, token) as node:
        results = await (await node.exec(targets, shell="echo $CODEBOLT_NODE", timeout=30)).result()
    results.raise_for_failures()
    return {name: result.stdout for name, result in results.nodes.items()}


def test_nodes_applied_at_once_get_their_own_endpoints_and_leave_nothing(tmp_path: Path) -> None:
    assert len(WORKERS) + 2 == PARALLEL_STARTS
    path = tmp_path / "par.yaml"
    path.write_text(TOPOLOGY)
    apply_topology(path)
    try:
        state = state_of(path)
        published = [state.nodes[n] for n in ["a", *WORKERS]]
        assert len({(n.host, n.port) for n in published}) == len(published), [
            (n.name, n.host, n.port) for n in published
        ]
        # Each endpoint is its own node's daemon, with that node's token.
        for node in published:
            assert node.url is not None
            answer = asyncio.run(_whoami(node.url, node.admin_token, [node.name]))
            assert answer == {node.name: f"{node.name}\n".encode()}
        # From the entry, by name over the topology's networks, the sandbox node included.
        entry = state.nodes["a"]
        assert entry.url is not None
        answers = asyncio.run(_whoami(entry.url, entry.admin_token, [*WORKERS, "s"]))
        assert answers == {n: f"{n}\n".encode() for n in [*WORKERS, "s"]}
        # The sandbox network came up while the others were being created: all joined it.
        sandbox_network = next(
            name
            for name in client().api.inspect_container(state.nodes["s"].handle["id"])[
                "NetworkSettings"
            ]["Networks"]
            if name.endswith("-sandbox")
        )
        for node in published:
            attrs: dict[str, Any] = client().api.inspect_container(node.handle["id"])
            assert sandbox_network in attrs["NetworkSettings"]["Networks"], node.name
    finally:
        destroy_topology(path)
    assert containers_of("par") == []
    assert labelled_leftovers(tmp_path) == []
