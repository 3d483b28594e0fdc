"""Fixtures that start real node daemons on loopback and always kill them afterwards.

``chain``: a→b→c→d, configured once for the whole session (read-only use: tests must not
reconfigure it). ``make_cluster``: build any small graph for one test; every cluster it built is
stopped at teardown, passed or failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codebolt_topo.testing import Cluster

MakeCluster = Callable[..., Cluster]


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("chain"), [("a", "b"), ("b", "c"), ("c", "d")])
    cluster.start()
    try:
        asyncio.run(cluster.configure())
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    built: list[Cluster] = []

    def make(
        edges: list[tuple[str, str]],
        nodes: list[str] | None = None,
        configure: bool = True,
        **per_node: dict[str, object],
    ) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(built)}", edges, nodes)
        built.append(cluster)
        cluster.start()
        if configure:
            asyncio.run(cluster.configure(**per_node))
        return cluster

    try:
        yield make
    finally:
        for cluster in built:
            cluster.stop()
