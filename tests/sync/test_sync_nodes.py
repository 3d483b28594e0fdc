"""Sync between real node daemons: round trips both ways, incremental, chains, diverged threads.

One topology is applied for the whole module (starting daemons dominates the cost) and always
destroyed. Each test uses its own thread ids, so tests stay independent of each other's history.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.sync import SyncReport, node_narrative, snapshot_nodes, sync_edges
from codebolt_topo.model.state import State

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: synctest
nodes:
  a: {}
  b: {}
  c: {}
  d: {}
edges:
  - {from: a, to: b, sync: push}
  - {from: b, to: c, sync: push}
  - {from: a, to: d, sync: both}
"""


@dataclass
class Net:
    path: Path

    @property
    def state(self) -> State:
        return state_file_for(self.path, "synctest").load()

    def workspace(self, node: str) -> Path:
        return self.path.parent / ".codebolt" / "synctest" / "nodes" / node / "workspace"

    def write(self, node: str, files: dict[str, str]) -> None:
        for rel, text in files.items():
            target = self.workspace(node) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def files(self, node: str) -> dict[str, str]:
        root = self.workspace(node)
        return {
            str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
        }

    def snapshot(self, node: str, thread: str, run: str = "r", name: str = "") -> dict[str, Any]:
        infos = asyncio.run(snapshot_nodes(self.path, [node], "obj", thread, run, name=name))
        return infos[node]

    def sync(self, *edges: str) -> SyncReport:
        return asyncio.run(sync_edges(self.path, list(edges) or None))

    def call(self, node: str, command: str, *args: str) -> Any:
        state = self.state
        held = state.nodes[node]
        url = held.url
        assert url is not None

        async def go() -> Any:
            async with NodeClient.connect(url, held.admin_token, name=node) as client:
                return await node_narrative(client, state, node).call(command, *args)

        return asyncio.run(go())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    path = tmp_path_factory.mktemp("sync") / "topology.yaml"
    path.write_text(TOPOLOGY)
    try:
        apply_topology(path)
        yield Net(path)
    finally:
        destroy_topology(path)


def _threads(log: list[dict[str, Any]], thread: str) -> list[tuple[str | None, str]]:
    return [(t["source_env"], t["head"]) for o in log for t in o["threads"] if t["id"] == thread]


def test_round_trip_both_directions_and_incremental(net: Net) -> None:
    bulk = {f"src/m{i}.py": secrets.token_hex(1000) for i in range(40)}
    net.write("a", {**bulk, "README": "from a\n"})
    first = net.snapshot("a", "rt", name="from a")
    full = net.sync("a->d")
    push, pull = full.transfers
    assert (push.transfer.direction, push.created) == ("push", ["rt"])
    assert (pull.transfer.direction, pull.unchanged) == ("pull", ["rt"])
    net.call("d", "restore", first["snapshot_id"])
    assert net.files("d") == net.files("a")
    net.write("d", {"README": "changed on d\n", "d.txt": "new\n"})
    second = net.snapshot("d", "rt", run="r2", name="from d")
    again = net.sync("a->d")
    assert again.transfers[0].bytes < push.bytes  # a sends only prerequisites: d has it all
    assert again.transfers[1].updated == ["rt"]
    assert again.transfers[1].bytes < push.bytes / 10  # only d's change travels back
    assert again.transfers[1].objects_written == 4  # commit, root tree, README, d.txt
    net.call("a", "restore", second["snapshot_id"])
    assert net.files("a") == net.files("d")
    assert net.files("a")["README"] == "changed on d\n"


def test_chain_carries_history_onward(net: Net) -> None:
    net.write("a", {"chain.txt": "carried\n"})
    info = net.snapshot("a", "chain")
    report = net.sync("a->b", "b->c")
    assert [(t.transfer.source, t.transfer.receiver) for t in report.transfers] == [
        ("a", "b"),
        ("b", "c"),
    ]
    assert all("chain" in t.created for t in report.transfers)
    net.call("c", "restore", info["snapshot_id"], "--force")
    assert net.files("c")["chain.txt"] == "carried\n"
    log = net.call("c", "log")
    [(source, head)] = _threads(log, "chain")
    assert (source, head) == (None, info["commit"])


def test_both_keeps_diverged_threads_side_by_side_and_carries_copies(net: Net) -> None:
    net.write("a", {"a-only.txt": "a\n"})
    ours = net.snapshot("a", "dv", name="a's")
    net.write("d", {"d-only.txt": "d\n"})
    theirs = net.snapshot("d", "dv", name="d's")  # same thread id, unrelated history: diverged
    report = net.sync("a->d")
    assert [t.diverged for t in report.transfers] == [["dv"], ["dv"]]
    assert sorted(_threads(net.call("a", "log"), "dv"), key=str) == sorted(
        [(None, ours["commit"]), ("d", theirs["commit"])], key=str
    )
    assert sorted(_threads(net.call("d", "log"), "dv"), key=str) == sorted(
        [(None, theirs["commit"]), ("a", ours["commit"])], key=str
    )
    net.sync("a->b")  # a's side-by-side copy of d's work travels on, still namespaced by d
    assert ("d", theirs["commit"]) in _threads(net.call("b", "log"), "dv")


def test_unknown_or_non_syncing_edges_are_refused(net: Net) -> None:
    from codebolt_topo.errors import ConfigError

    with pytest.raises(ConfigError, match="no edge 'c->a'"):
        net.sync("c->a")


def test_exec_snapshots_around_the_command_and_cli_sync(net: Net) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codebolt_topo.cli.main", *args],
            cwd=net.path.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = cli(
        "exec",
        "topology.yaml",
        "b",
        "--snapshot",
        "both",
        "--objective",
        "o",
        "--thread",
        "ex",
        "--run",
        "r1",
        "--",
        "sh",
        "-c",
        "echo ran > out.txt; exit 3",
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("[b] snapshot ") == 2
    [thread] = [t for o in net.call("b", "log") for t in o["threads"] if t["id"] == "ex"]
    names = [s["name"] for s in thread["runs"][0]["snapshots"]]
    assert names == [
        "before: sh -c 'echo ran > out.txt; exit 3'",
        "after: sh -c 'echo ran > out.txt; exit 3' (exit 3)",
    ]
    synced = cli("sync", "topology.yaml", "b->c")
    assert synced.returncode == 0, synced.stderr
    assert "b->c push b => c:" in synced.stdout
    assert "sync complete: 1 transfer(s)" in synced.stdout
    after = thread["runs"][0]["snapshots"][1]["snapshot_id"]
    net.call("c", "restore", after, "--force")
    assert net.files("c")["out.txt"] == "ran\n"


def test_cli_narrative_commands_on_nodes(net: Net) -> None:
    """snapshot, export (bundle and tar.gz), import, restore and log with --node, by hand."""

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "codebolt_topo.cli.main", "narrative", *args],
            cwd=net.path.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    net.write("a", {"cli/notes.txt": "by hand\n"})
    made = cli(
        "snapshot",
        "--node",
        "a",
        "--objective",
        "obj",
        "--thread",
        "cli",
        "--run",
        "r",
        "--name",
        "manual",
        "--json",
    )
    snapshot_id = json.loads(made)["snapshot_id"]
    bundle, tgz = net.path.parent / "cli.bundle", net.path.parent / "cli.tgz"
    cli("export", "--node", "a", "--thread", "cli", "-o", str(bundle))
    assert "created   cli" in cli("import", str(bundle), "--node", "c", "--source-env", "a")
    assert "unchanged cli" in cli("import", str(bundle), "--node", "c", "--source-env", "a")
    assert "restored" in cli("restore", snapshot_id, "--node", "c", "--force")
    assert net.files("c")["cli/notes.txt"] == "by hand\n"
    assert "run r: r" in cli("log", "--node", "c")
    cli("export", "--node", "a", "--tar", snapshot_id, "-o", str(tgz))
    assert "created   cli" in cli("import", str(tgz), "--node", "b")
    assert "manual" in cli("log", "--node", "b")
