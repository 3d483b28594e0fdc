"""What becomes of a node's history when it goes: archived when it can be read, said plainly
when there is nothing to keep or it is already lost, and a removal refused (before anything
changes) when it exists but cannot be read, until the user gives it up by name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codebolt_topo.engine.archives import list_archives
from codebolt_topo.engine.history import (
    Discard,
    HistoryKeeper,
    HistoryRefused,
    assess,
    history_notice,
)
from codebolt_topo.engine.operations import (
    apply_topology,
    destroy_topology,
    prepare_plan,
    state_file_for,
)
from codebolt_topo.engine.statefile import StateFile
from codebolt_topo.engine.sync import snapshot_nodes
from codebolt_topo.errors import ConfigError
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import Lifecycle, NodeState, State


def _container(name: str = "box", *, handle: bool = True, token: str = "t") -> NodeState:
    node = NodeState(name=name, provider="docker", admin_token=token, launch_hash="h")
    if handle:
        node.handle = {"id": "c0ffee", "name": f"x-{name}"}
        node.host, node.port = "127.0.0.1", 4000
    node.move_to(Lifecycle.STARTING, "provider docker")
    node.move_to(Lifecycle.RUNNING, "at ws://127.0.0.1:4000")
    return node


def test_each_fate_says_what_becomes_of_the_history(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    exited = Observation(alive=False, reason="exited (137)")
    gone = Observation(alive=False, reason="container x-box is gone", gone=True)
    fates = [
        assess(state_file, _container("never", handle=False), None),
        assess(state_file, _container("lost"), gone),
        assess(state_file, _container("stuck"), exited),
        assess(state_file, _container("healed"), exited, replacing=True),
        assess(state_file, _container("given"), exited, discard=Discard.of(nodes=["given"])),
        assess(state_file, _container("sealed", token="sealed:v1:k1:abc"), None),
        assess(state_file, _container("up"), Observation(alive=True)),
    ]
    assert [f.blocks for f in fates] == [False, False, True, False, False, True, False]
    where = tmp_path / "demo.archive"
    assert history_notice(state_file, fates) == [
        "History of the nodes this replaces or removes:",
        "  never: nothing to keep: the node never ran",
        "  lost: already lost: container x-box is gone, and its store with it",
        "  stuck: CANNOT BE ARCHIVED (node 'stuck' is not running (exited (137)): its store "
        "cannot be read): refused unless --discard-history-of stuck",
        "  healed: cannot be archived (node 'healed' is not running (exited (137)): its store "
        "cannot be read): replacing it loses it",
        "  given: discarded as asked: its history is lost",
        "  sealed: CANNOT BE ARCHIVED (the state key is missing here: its store cannot be read "
        "through the node): refused unless --discard-history-of sealed",
        f"  up: archived through the node to {where}/, if it holds any",
    ]


def test_the_keeper_refuses_a_removal_and_lets_a_replacement_go(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    state = State(topology="demo")
    node = state.nodes["box"] = _container()
    node.move_to(Lifecycle.FAILED, "exited (137)")
    with pytest.raises(HistoryRefused, match="--discard-history-of box"):
        asyncio.run(HistoryKeeper(state_file).keep(state, node))
    said: list[str] = []
    asyncio.run(HistoryKeeper(state_file, progress=said.append).keep(state, node, replacing=True))
    assert said == [
        "box: cannot be archived (node 'box' is not running (FAILED): its store cannot be "
        "read): replacing it loses it"
    ]
    asyncio.run(HistoryKeeper(state_file, discard=Discard.of(True)).keep(state, node))
    assert not (tmp_path / "demo.archive").exists()
    watching = HistoryKeeper(state_file, progress=said.append)  # as the watch passes it
    watching.observed = {"box": Observation(alive=False, reason="container x is gone", gone=True)}
    asyncio.run(watching.keep(state, node, replacing=True))
    assert said[-1] == "box: already lost: container x is gone, and its store with it"


def test_destroy_archives_every_local_store_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: kept\nnodes: {a: {}, b: {}}\n")
    apply_topology(path)
    try:
        asyncio.run(snapshot_nodes(path, ["a"], "o", "t", "r"))
        plan = prepare_plan(path)
        assert plan.history == ()  # nothing goes
        with pytest.raises(ConfigError, match=r"--discard-history-of aa: no such node in the "):
            destroy_topology(path, discard=Discard.of(False, ["aa"]))  # a typo for a
        assert set(state_file_for(path, "kept").load(sealed_ok=True).nodes) == {"a", "b"}
        told: list[str] = []
        said: list[str] = []
        destroy_topology(path, notice=told.extend, progress=said.append)
    except BaseException:
        destroy_topology(path, discard=Discard.of(True))
        raise
    state_file = state_file_for(path, "kept")
    [archive] = list_archives(state_file)
    assert archive.node == "a"
    assert archive.threads == 1
    assert archive.bundle.is_file()
    assert archive.bundle.stat().st_mode & 0o777 == 0o600
    assert told == [
        "History of the nodes this replaces or removes:",
        f"  a: archived to {state_file.directory / 'kept.archive'}/ (1 thread(s))",
        "  b: nothing to keep: no snapshot was ever taken on it",
    ]
    assert f"a: history archived to {archive.bundle}" in said


def test_a_dead_node_placed_here_is_read_from_disk(tmp_path: Path) -> None:
    """A hybrid node placed on the local provider whose daemon died: its store is still on
    disk, so it is archived whole, no daemon or key needed."""
    from codebolt_topo.narrative import NarrativeStore

    state_file = StateFile(tmp_path, "demo")
    node_dir = state_file.runtime_dir / "nodes" / "h"
    (node_dir / "workspace").mkdir(parents=True)
    (node_dir / "workspace" / "model.json").write_text('{"weight": 3}')
    with NarrativeStore.open(node_dir / "workspace.narrative", node_dir / "workspace", "h") as s:
        s.snapshot("o", "t", "r")
    state = State(topology="demo")
    node = state.nodes["h"] = NodeState(
        name="h", provider="hybrid", admin_token="sealed:v1:k1:abc", launch_hash="h"
    )
    node.handle = {"placed_on": "local", "placement": 0, "pid": 1, "dir": str(node_dir)}
    node.move_to(Lifecycle.STARTING, "provider hybrid")
    node.move_to(Lifecycle.FAILED, "process 1 is gone")
    fate = assess(state_file, node, Observation(alive=False, reason="process 1 is gone"))
    assert (fate.what, fate.detail, fate.blocks) == ("archive", "1 thread(s)", False)
    said: list[str] = []
    asyncio.run(HistoryKeeper(state_file, progress=said.append).keep(state, node))
    [archive] = list_archives(state_file)
    assert (archive.node, archive.provider, archive.threads) == ("h", "hybrid", 1)
    assert said == [f"h: history archived to {archive.bundle}"]
    asyncio.run(HistoryKeeper(state_file, progress=said.append).keep(state, node))
    assert said[-1] == f"h: history unchanged since archive {archive.id}"
    assert len(list_archives(state_file)) == 1


def test_a_store_that_fails_to_read_takes_back_what_the_destroy_archived(tmp_path: Path) -> None:
    """b's store lost its objects: destroy archives a, fails on b, takes a's archive back and
    stops nothing; given up by name, b goes and a's history is archived."""
    path = tmp_path / "topology.yaml"
    path.write_text("name: torn\nnodes: {a: {}, b: {}}\n")
    apply_topology(path)
    state_file = state_file_for(path, "torn")
    try:
        asyncio.run(snapshot_nodes(path, ["a", "b"], "o", "t", "r"))
        objects = state_file.runtime_dir / "nodes" / "b" / "workspace.narrative" / "shadow.git"
        for item in (objects / "objects").rglob("*"):
            if item.is_file():
                item.unlink()
        with pytest.raises(HistoryRefused) as refused:
            destroy_topology(path)
        assert str(refused.value).startswith(
            "destroy refused: the history of 1 node(s) cannot be archived and "
            "removing them would lose it:\n  b: the store of node 'b' is damaged (KeyError: "
        )
        assert str(refused.value).endswith("nothing was changed")
        assert list_archives(state_file) == []
        assert sorted(state_file.load().nodes) == ["a", "b"]
    finally:
        destroy_topology(path, discard=Discard.of(nodes=["b"]))
    assert [a.node for a in list_archives(state_file)] == ["a"]
