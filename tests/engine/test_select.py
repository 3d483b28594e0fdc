"""Routing by capability on a real topology: nearest match, load breaks ties, clear misses."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.client import NodeClient, Started
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.select import select_targets
from codebolt_topo.errors import ConfigError
from codebolt_topo.providers.local.provider import LocalProvider

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: caps
nodes:
  laptop: {}
  relay: {}
  gpu1: {capabilities: [gpu]}
  gpu2: {capabilities: [gpu]}
  web: {capabilities: [browser]}
edges: [laptop -> relay, relay -> gpu1, relay -> gpu2, laptop -> web]
"""


def test_capability_routing(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        # The only browser is one hop away; the GPUs are two hops away, behind relay.
        assert asyncio.run(select_targets(path, ["browser"])) == ("laptop", ["web"])
        entry, targets = asyncio.run(select_targets(path, ["gpu"], every=True))
        assert (entry, sorted(targets)) == ("laptop", ["gpu1", "gpu2"])
        result = topo.run(targets[0], ["sh", "-c", "echo $CODEBOLT_NODE"])
        assert result[targets[0]].stdout == f"{targets[0]}\n".encode()

        with pytest.raises(ConfigError) as caught:
            asyncio.run(select_targets(path, ["gpu", "browser"]))
        assert "no node reachable from 'laptop' offers gpu, browser" in str(caught.value)
        assert "gpu1 lacks browser" in str(caught.value)
        assert "web lacks gpu" in str(caught.value)

        gpu1 = topo.state.nodes["gpu1"]
        assert gpu1.url is not None

        async def busy_gpu1_then_select() -> list[str]:
            async with NodeClient.connect(gpu1.url, gpu1.admin_token, name="gpu1") as client:
                handle = await client.exec("gpu1", argv=["sleep", "30"])
                async for event in handle:
                    if isinstance(event, Started):
                        break
                _, chosen = await select_targets(path, ["gpu"])
                await handle.cancel()
                async for _ in handle:
                    pass
                return chosen

        start = time.monotonic()
        assert asyncio.run(busy_gpu1_then_select()) == ["gpu2"]  # the idle one of the two
        assert time.monotonic() - start < 20


def test_capabilities_detected_by_the_daemon_route_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capability nobody declared, found by the daemon where it runs, is routed to."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "chromium").write_text("#!/bin/sh\nexit 0\n")
    (tools / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")  # the daemons inherit it
    path = tmp_path / "topology.yaml"
    path.write_text("name: detect\nnodes: {laptop: {}, box: {}}\nedges: [laptop -> box]\n")
    with applied_topology(path) as topo:
        box = topo.state.nodes["box"]
        assert "browser" in box.detected
        assert f"python:{sys.version_info[0]}.{sys.version_info[1]}" in box.detected
        state = topo.state
        state.nodes["laptop"].detected = []  # as if the laptop had none: box is the match
        state_file = state_file_for(path, "detect")
        with state_file.locked("test"):
            state_file.save(state)
        with monkeypatch.context() as patched:
            patched.setattr(
                LocalProvider,
                "base_offers",
                classmethod(lambda cls: (frozenset({"python", "local"}), {})),
            )
            assert asyncio.run(select_targets(path, ["browser"])) == ("laptop", ["box"])
