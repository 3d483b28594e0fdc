"""Real corpora through ``codebolt sync`` between two real local nodes (issue 12, finding 1:
``codebolt sync`` on a push edge hung on an ordinary workspace, and the import on the
receiving node kept running after the CLI was killed).

One topology for the module, always destroyed; each test uses its own thread.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.sync import node_narrative, snapshot_nodes, sync_edges
from codebolt_topo.narrative.remote import NodeNarrative

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "narrative"))
from corpus import SOURCE_TREE, assert_same, copy_tree, site_packages_subset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOPOLOGY = """\
name: synccorpora
nodes:
  a: {}
  b: {}
edges:
  - {from: a, to: b, sync: push}
"""


class Net:
    def __init__(self, path: Path) -> None:
        self.path = path

    def workspace(self, node: str) -> Path:
        return self.path.parent / ".codebolt" / "synccorpora" / "nodes" / node / "workspace"

    def snapshot(self, node: str, thread: str) -> str:
        infos = asyncio.run(snapshot_nodes(self.path, [node], "obj", thread, "r"))
        return str(infos[node]["snapshot_id"])

    async def _on(self, node: str, command: str, *args: str) -> object:
        state = state_file_for(self.path, "synccorpora").load()
        held = state.nodes[node]
        assert held.url is not None
        async with NodeClient.connect(held.url, held.admin_token, name=node) as client:
            return await node_narrative(client, state, node).call(command, *args)

    def call(self, node: str, command: str, *args: str) -> object:
        return asyncio.run(self._on(node, command, *args))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    path = tmp_path_factory.mktemp("synccorpora") / "topology.yaml"
    path.write_text(TOPOLOGY)
    try:
        apply_topology(path)
        yield Net(path)
    finally:
        destroy_topology(path)


def _fresh(root: Path) -> None:
    """Empty a node's workspace (each test brings its own corpus)."""
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            subprocess.run(["rm", "-rf", str(child)], check=True)
        else:
            child.unlink()


def test_two_thousand_small_files_through_the_cli(net: Net) -> None:
    """The workspace that made ``codebolt sync`` hang: a 70 KB root tree that compresses."""
    ws = net.workspace("a")
    _fresh(ws)
    rng = random.Random(12)
    for i in range(2000):
        (ws / f"mod_{i:04d}.py").write_text(f"x = {i % 97}\n" * rng.randint(1, 49))
    snapshot = net.snapshot("a", "small-files")
    done = subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", "sync", "topology.yaml", "a->b"],
        cwd=net.path.parent, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 created" in done.stdout
    _fresh(net.workspace("b"))
    net.call("b", "restore", snapshot, "--force")
    assert_same(net.workspace("b"), ws)


def test_source_tree_and_site_packages_through_sync(net: Net) -> None:
    ws = net.workspace("a")
    _fresh(ws)
    copy_tree(SOURCE_TREE, ws / "codebolt_topo")
    site_packages_subset(ws / "site-packages")
    (ws / "codebolt_topo" / "entry").symlink_to("narrative/entry.py")
    snapshot = net.snapshot("a", "corpora")
    report = asyncio.run(sync_edges(net.path, ["a->b"]))
    [transfer] = report.transfers
    assert "corpora" in transfer.created
    _fresh(net.workspace("b"))
    net.call("b", "restore", snapshot, "--force")
    assert_same(net.workspace("b"), ws)


def test_a_call_given_up_cancels_its_job_on_the_node(net: Net, tmp_path: Path) -> None:
    """Cancelling the caller (Ctrl-C, a timeout) cancels the job instead of leaving it to run
    detached for its lease. The job here stands in for a long import: a program that sleeps."""
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\nexec sleep 120\n")
    sleeper.chmod(0o755)
    state = state_file_for(net.path, "synccorpora").load()
    held = state.nodes["b"]
    assert held.url is not None

    async def scenario() -> int:
        async with NodeClient.connect(held.url, held.admin_token, name="b") as client:
            store = NodeNarrative(client, "b", env={"CODEBOLT_PYTHON": str(sleeper)})
            call = asyncio.create_task(store.run("import", "-", stdin=b"never read"))
            for _ in range(100):
                await asyncio.sleep(0.1)
                if (await client.info())["jobs"]:
                    break
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        async with NodeClient.connect(held.url, held.admin_token, name="b") as client:
            for _ in range(100):
                jobs = int((await client.info())["jobs"])
                if not jobs:
                    break
                await asyncio.sleep(0.2)
            return jobs

    assert asyncio.run(scenario()) == 0
