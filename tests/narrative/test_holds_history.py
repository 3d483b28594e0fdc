"""The shell's answer to "does this node's store hold any history?" (``HOLDS_HISTORY``, asked
by a destroy before it starts a Python to export a store) agrees with the store itself: real
stores, made and filled through NarrativeStore, in the places ``default_state_dir`` finds them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from codebolt_topo.narrative import NarrativeStore, Selection
from codebolt_topo.narrative.locate import HOLDS_HISTORY, default_state_dir


def answer(workspace: Path, env: dict[str, str] | None = None) -> str:
    """What the check prints, run as a node runs a job: in the workspace, its environment."""
    environ = {k: v for k, v in os.environ.items() if k != "CODEBOLT_STATE_DIR"}
    done = subprocess.run(
        ["/bin/sh", "-c", HOLDS_HISTORY],
        cwd=workspace,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def workspace_with_files(tmp_path: Path, name: str = "ws") -> Path:
    workspace = tmp_path / name
    workspace.mkdir()
    (workspace / "main.py").write_text("print('hi')\n")
    return workspace


def test_no_store_is_empty(tmp_path: Path) -> None:
    assert answer(workspace_with_files(tmp_path)) == "empty"


def test_a_store_opened_but_never_snapshotted_is_empty(tmp_path: Path) -> None:
    workspace = workspace_with_files(tmp_path)
    with NarrativeStore.open(default_state_dir(workspace, {}), workspace, "a") as store:
        assert not store.heads(include_remotes=True)
    assert answer(workspace) == "empty"


def test_a_snapshot_is_history(tmp_path: Path) -> None:
    workspace = workspace_with_files(tmp_path)
    with NarrativeStore.open(default_state_dir(workspace, {}), workspace, "a") as store:
        store.snapshot("o", "t", "r")
    assert answer(workspace) == "held"


def test_only_a_peers_copies_are_history_too(tmp_path: Path) -> None:
    """A node that never snapshotted but received a peer's threads holds what a destroy must
    keep: the copies under its remotes."""
    peer_ws = workspace_with_files(tmp_path, "peer")
    with NarrativeStore.open(default_state_dir(peer_ws, {}), peer_ws, "peer") as peer:
        peer.snapshot("o", "t", "r")
        bundle = peer.export_bundle(Selection.everything(remotes=True))
    workspace = workspace_with_files(tmp_path)
    with NarrativeStore.open(default_state_dir(workspace, {}), workspace, "a") as store:
        store.import_bundle(bundle, "peer", copies=True)
        assert store.heads(include_remotes=True)
    assert answer(workspace) == "held"


def test_packed_refs_are_read(tmp_path: Path) -> None:
    workspace = workspace_with_files(tmp_path)
    state = default_state_dir(workspace, {})
    with NarrativeStore.open(state, workspace, "a") as store:
        store.snapshot("o", "t", "r")
    git = state / "shadow.git"
    subprocess.run(["git", "--git-dir", str(git), "pack-refs", "--all"], check=True)
    assert not [p for p in (git / "refs").rglob("*") if p.is_file()]
    assert answer(workspace) == "held"


def test_the_state_dir_of_the_node_is_followed(tmp_path: Path) -> None:
    """``CODEBOLT_STATE_DIR`` (a node's runtime dir) names the store, as default_state_dir
    reads it; a store beside the workspace is then not this node's."""
    workspace = workspace_with_files(tmp_path)
    runtime = tmp_path / "runtime"
    env = {"CODEBOLT_STATE_DIR": str(runtime)}
    with NarrativeStore.open(default_state_dir(workspace, env), workspace, "a") as store:
        store.snapshot("o", "t", "r")
    assert (runtime / "narrative" / "shadow.git").is_dir()
    assert answer(workspace, env) == "held"
    assert answer(workspace) == "empty"


@pytest.mark.parametrize("link", [True, False])
def test_a_workspace_reached_through_a_link_is_resolved(tmp_path: Path, link: bool) -> None:
    workspace = workspace_with_files(tmp_path)
    with NarrativeStore.open(default_state_dir(workspace, {}), workspace, "a") as store:
        store.snapshot("o", "t", "r")
    where = workspace
    if link:
        where = tmp_path / "elsewhere"
        where.symlink_to(workspace)
    assert answer(where) == "held"
