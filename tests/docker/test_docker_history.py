"""A container node's history (its store lives in the container): archived through the node
while it runs, and, once its container has died, a removal refused before anything changes
until the user gives that node's history up by name (issue 16, item 4)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from docker_helpers import client, containers_of, state_of

from codebolt_topo.engine.archives import list_archives
from codebolt_topo.engine.history import Discard, HistoryKeeper, HistoryRefused
from codebolt_topo.engine.jobs import list_jobs
from codebolt_topo.engine.operations import (
    apply_topology,
    destroy_topology,
    prepare_plan,
    state_file_for,
)
from codebolt_topo.engine.sync import snapshot_nodes

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BOTH = "name: boxed\nnodes:\n  a: {}\n  b: {provider: docker}\n"


def test_a_dead_container_refuses_the_destroy_until_given_up(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(BOTH)
    state_file = state_file_for(path, "boxed")
    apply_topology(path)
    try:
        asyncio.run(snapshot_nodes(path, ["a", "b"], "o", "t", "r"))
        # Removed from the file while it runs: archived through the node itself.
        alone = tmp_path / "alone.yaml"
        alone.write_text("name: boxed\nnodes: {a: {}}\n")
        said: list[str] = []
        apply_topology(alone, progress=said.append)
        [archived] = list_archives(state_file)
        assert (archived.node, archived.provider, archived.threads) == ("b", "docker", 1)
        assert f"b: history archived to {archived.bundle}" in said

        apply_topology(path)  # b again, and a snapshot in it; then its container dies
        asyncio.run(snapshot_nodes(path, ["b"], "o", "t2", "r"))
        client().containers.get(state_of(path).nodes["b"].handle["id"]).kill()
        plan = prepare_plan(alone)
        [fate] = plan.fates
        assert fate.node == "b"
        assert fate.blocks
        assert plan.history[1].startswith("  b: CANNOT BE ARCHIVED (node 'b' is not running (")
        with pytest.raises(HistoryRefused, match="--discard-history-of b") as refused:
            destroy_topology(path)
        assert "b: node 'b' is not running (" in str(refused.value)
        # The same through the CLI: plan --json marks it, destroy exits 1 saying why.
        planned = json.loads(_cli("plan", "alone.yaml", "--json", cwd=tmp_path).stdout)
        assert [(h["node"], h["fate"], h["refused"]) for h in planned["history"]] == [
            ("b", "unreadable", True)
        ]
        cli = _cli("destroy", "--auto-approve", cwd=tmp_path)
        assert cli.returncode == 1
        assert cli.stderr.startswith("error: destroy refused: the history of 1 node(s) cannot")
        assert "--discard-history-of b" in cli.stderr
        assert sorted(state_of(path).nodes) == ["a", "b"]  # nothing stopped
        assert len(containers_of("boxed")) == 1
        assert len(list_archives(state_file)) == 1  # and nothing archived, not even a's
    finally:
        destroy_topology(path, discard=Discard.of(nodes=["b"]))
    assert [a.node for a in list_archives(state_file)] == ["b", "a"]
    assert containers_of("boxed") == []


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_container_that_never_snapshotted_is_asked_by_a_shell_not_a_python(
    tmp_path: Path,
) -> None:
    """Before a destroy starts a Python in a container to export its store, a shell there says
    whether the store holds anything (most nodes never snapshotted): nothing to archive, and
    no export run. Once it holds a thread, the export runs and the archive is written."""
    path = tmp_path / "topology.yaml"
    path.write_text(BOTH)
    state_file = state_file_for(path, "boxed")
    apply_topology(path)
    try:
        said: list[str] = []
        keeper = HistoryKeeper(state_file, progress=said.append)
        state = state_of(path)
        asyncio.run(keeper.keep(state, state.nodes["b"]))
        assert said == ["b: no history to archive"]
        commands = _commands_run_on(path, "b")
        assert len(commands) == 1
        assert "CODEBOLT_STATE_DIR/narrative" in commands[0]  # (the listing shortens it)
        assert list_archives(state_file) == []

        asyncio.run(snapshot_nodes(path, ["b"], "o", "t", "r"))
        asyncio.run(keeper.keep(state, state.nodes["b"]))
        assert said[-1].startswith("b: history archived to ")
        commands = _commands_run_on(path, "b")  # the check, then the snapshot's and export's
        checks = [c for c in commands if "CODEBOLT_STATE_DIR/narrative" in c]
        pythons = [c for c in commands if "CODEBOLT_PYTHON" in c]  # (narrative_launch.py)
        assert (len(checks), len(pythons), len(commands)) == (2, 2, 4), commands
    finally:
        destroy_topology(path)


def _commands_run_on(path: Path, node: str) -> list[str]:
    listing = asyncio.run(list_jobs(path, nodes=[node], finished=True))
    return [job.command for job in listing.jobs]
