"""An orchestrator killed with SIGKILL at any point of apply or destroy loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.model.state import Lifecycle

pytestmark = pytest.mark.slow

TOPOLOGY = "name: crash\nnodes: {a: {}, b: {}, c: {}, d: {}}\nedges: [{linear: [a, b, c, d]}]\n"


def _daemons(topology: str, under: Path) -> list[int]:
    """Pids of node daemons on this machine carrying ``topology``'s marker whose config lies
    under ``under`` (the test's own directory: other runs may use the same topology name)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"codebolt_topo.node" in cmdline and str(under).encode() in cmdline
                and f"CODEBOLT_TOPOLOGY={topology}".encode() in environ):
            with open(f"/proc/{entry.name}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    pids.append(int(entry.name))
    return pids


def _run_and_kill(args: list[str], cwd: Path, after: float) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("after", [0.4, 0.9, 1.6, 2.6])
def test_apply_killed_at_any_point_converges_on_rerun(after: float, tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    _run_and_kill(["apply", "--auto-approve"], tmp_path, after)
    state_file = state_file_for(path, "crash")
    state_file.load()  # loads: old or new, never torn
    with applied_topology(path) as topo:
        state = topo.state
        assert {n.lifecycle for n in state.nodes.values()} == {Lifecycle.RUNNING}
        running = sorted(_daemons("crash", tmp_path))
        assert running == sorted(topo.pids().values()), "duplicate nodes"
        assert topo.run("d", ["echo", "ok"])["d"].stdout == b"ok\n"
    assert _daemons("crash", tmp_path) == []


@pytest.mark.parametrize("after", [0.5, 1.2])
def test_destroy_killed_midway_finishes_on_rerun(after: float, tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    apply_topology(path)
    _run_and_kill(["destroy", "--auto-approve"], tmp_path, after)
    state_file_for(path, "crash").load()
    destroy_topology(path)
    assert _daemons("crash", tmp_path) == []
    assert state_file_for(path, "crash").load().nodes == {}


def test_two_applies_at_once_never_both_write(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", "apply", "--auto-approve"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    codes = sorted(run.returncode for run in runs)
    try:
        assert codes in ([0, 0], [0, 1]), outcomes
        if codes == [0, 1]:
            loser = next(err for run, (_, err) in zip(runs, outcomes, strict=True)
                         if run.returncode == 1)
            assert "is locked by apply (pid" in loser
        # Either the second waited for nothing to do, or it was refused: never two nodes each.
        state = state_file_for(path, "crash").load()
        recorded = sorted(n.handle["pid"] for n in state.nodes.values())
        assert sorted(_daemons("crash", tmp_path)) == recorded
        assert len(state.nodes) == 4
    finally:
        destroy_topology(path)
    assert _daemons("crash", tmp_path) == []
