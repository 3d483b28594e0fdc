"""``limits:`` of the topology and of one node reach the daemons (issue 12's daemon limits)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.client import ExecResult, NodeClient

pytestmark = pytest.mark.slow

LIMITED = """name: limited
limits: {targets: 2}
nodes:
  a: {}
  b: {}
  c: {}
  d: {limits: {targets: 5}}
edges: [a -> b, a -> c, a -> d]
"""


def test_topology_and_node_limits_reach_the_daemons(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(LIMITED)
    with applied_topology(path) as applied:
        state = applied.state

        async def exec_on(node: str, targets: list[str]) -> ExecResult:
            found = state.nodes[node]
            async with NodeClient.connect(found.url, found.admin_token) as client:  # type: ignore[arg-type]
                return await (await client.exec(targets, argv=["true"])).result()

        refused = asyncio.run(exec_on("a", ["b", "c", "d"]))
        assert {f.code for f in refused.failures} == {"over-limit"}, refused
        assert "limits.targets = 2" in refused.failures[0].message
        assert asyncio.run(exec_on("a", ["b", "c"])).failures == []
        # d's own limit is 5: three names pass the check (two of them then fail as unknown).
        codes = {f.code for f in asyncio.run(exec_on("d", ["d", "x", "y"])).failures}
        assert "over-limit" not in codes
