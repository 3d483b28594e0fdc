"""Swarm tests: one real multi-node swarm per session (``cluster.py``), and nothing left behind.

Every test gets ``swarm_guard``: after it, passed or failed, every service, secret, network and
container labelled by a topology under its ``tmp_path`` is removed, and a test that left
something behind fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import SwarmCluster, running_cluster
from swarm_helpers import leftovers, remove_leftovers


@pytest.fixture(scope="session")
def swarm(node_image: str) -> Iterator[SwarmCluster]:
    with running_cluster(node_image) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def swarm_guard(swarm: SwarmCluster, tmp_path: Path) -> Iterator[None]:
    yield
    left = leftovers(tmp_path)
    remove_leftovers(tmp_path)
    assert left == [], f"left behind: {left}"
