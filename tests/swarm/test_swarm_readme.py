"""The README's progressive scaling example (local -> docker -> swarm), applied as written on the
real swarm; only the registry's address is this test's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster import SwarmCluster
from swarm_helpers import applied, run_on, state_of

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_IMAGE = "registry.example.com:5000/codebolt-node:0.1.0"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## swarm nodes") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_the_readmes_scaling_example_places_local_docker_and_swarm(
    swarm: SwarmCluster, tmp_path: Path
) -> None:
    example = readme_example()
    assert EXAMPLE_IMAGE in example
    path = tmp_path / "topology.yaml"
    path.write_text(example.replace(EXAMPLE_IMAGE, swarm.image))
    with applied(path):
        nodes = state_of(path).nodes
        placed = {name: node.handle.get("placed_on", node.provider) for name, node in nodes.items()}
        assert placed == {
            "laptop": "local",
            "worker-1": "local",
            "worker-2": "docker",
            "worker-3": "swarm",
            "worker-4": "swarm",
            "trainer": "swarm",
        }
        assert nodes["trainer"].handle["swarm_node"] == "codebolt-swarm-w1"
        targets = [n for n in nodes if n != "laptop"]
        results = run_on(path, targets, "echo $CODEBOLT_NODE")
        assert {n: results[n].stdout for n in targets} == {n: f"{n}\n".encode() for n in targets}
