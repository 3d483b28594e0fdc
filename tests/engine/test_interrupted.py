"""An orchestrator killed with SIGKILL at any point of apply or destroy loses nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_topology import applied_topology, daemons_under

from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.errors import LockError
from codebolt_topo.model.state import Lifecycle

pytestmark = pytest.mark.slow

TOPOLOGY = "name: crash\nnodes: {a: {}, b: {}, c: {}, d: {}}\nedges: [{linear: [a, b, c, d]}]\n"


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
        running = sorted(daemons_under(tmp_path))
        assert running == sorted(topo.pids().values()), "duplicate nodes"
        assert topo.run("d", ["echo", "ok"])["d"].stdout == b"ok\n"
    assert daemons_under(tmp_path) == []


@pytest.mark.parametrize("after", [0.5, 1.2])
def test_destroy_killed_midway_finishes_on_rerun(after: float, tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    apply_topology(path)
    _run_and_kill(["destroy", "--auto-approve"], tmp_path, after)
    state_file_for(path, "crash").load()
    destroy_topology(path)
    assert daemons_under(tmp_path) == []
    assert state_file_for(path, "crash").load().nodes == {}


def test_two_applies_at_once_never_both_write(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", "apply", "--auto-approve"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    codes = sorted(run.returncode for run in runs)
    try:
        assert codes in ([0, 0], [0, 1]), outcomes
        if codes == [0, 1]:
            loser = next(
                err for run, (_, err) in zip(runs, outcomes, strict=True) if run.returncode == 1
            )
            assert "is locked by apply (pid" in loser
        # Either the second waited for nothing to do, or it was refused: never two nodes each.
        state = state_file_for(path, "crash").load()
        recorded = sorted(n.handle["pid"] for n in state.nodes.values())
        assert sorted(daemons_under(tmp_path)) == recorded
        assert len(state.nodes) == 4
        assert {n.lifecycle for n in state.nodes.values()} == {Lifecycle.RUNNING}
        assert all(n.runtime_hash for n in state.nodes.values()), "a node was left unwired"
    finally:
        destroy_topology(path)
    assert daemons_under(tmp_path) == []


def _kill_when(
    args: list[str], cwd: Path, state: Path, reached: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """Run ``codebolt ARGS`` and SIGKILL it as soon as the state file's document passes
    ``reached``: a point in the run's own progress, where a delay in seconds may land anywhere
    (or before the first write) on a loaded machine. Returns the document it was killed at, or
    None when the run finished before a poll saw the point (writes a few ms apart: try again)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while process.poll() is None:
            with contextlib.suppress(FileNotFoundError):
                seen: dict[str, Any] = json.loads(state.read_bytes())  # never torn: no retry
                if reached(seen):
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return seen
            time.sleep(0.002)
        return None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _configured(document: dict[str, Any]) -> list[bool]:
    return [bool(node.get("runtime_hash")) for node in document["nodes"].values()]


#: Points of an apply of the 4-node chain (nodes that change at once share a state write, so
#: serials no longer count the steps): daemons starting, none recorded running yet; some
#: RUNNING, none configured; some configured, their neighbours not.
APPLY_POINTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "starting": lambda d: len(d["nodes"]) > 0,
    "running": lambda d: any(n["lifecycle"] == "RUNNING" for n in d["nodes"].values()),
    "configured": lambda d: any(_configured(d)),
}


def _lock_holders(lock: Path) -> list[str]:
    """Processes with ``lock`` open (what to name when a lock outlives its killed holder)."""
    holders = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                for fd in os.scandir(f"/proc/{entry.name}/fd"):
                    if os.readlink(fd.path) == str(lock):
                        argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
                        holders.append(f"{entry.name}: {b' '.join(argv)[:120]!r}")
    return holders


@pytest.mark.parametrize("point", list(APPLY_POINTS))
def test_apply_killed_at_each_phase_converges_on_rerun(point: str, tmp_path: Path) -> None:
    """Killed at each point of :data:`APPLY_POINTS`; the configure pushes take about a
    millisecond each, so a poll may miss the point: the run is then destroyed and tried again."""
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    state_file = state_file_for(path, "crash")
    for _attempt in range(5):
        seen = _kill_when(
            ["apply", "--auto-approve"], tmp_path, state_file.path, APPLY_POINTS[point]
        )
        complete = seen is None or (len(seen["nodes"]) == 4 and all(_configured(seen)))
        if not complete:
            break
        destroy_topology(path)  # also after the last try: a failed test leaves no daemons
    assert not complete, "the apply finished each time: nothing was interrupted"
    state_file.load()
    try:  # the kernel drops a SIGKILLed holder's lock; a child mid-spawn may hold it a moment
        apply_topology(path, lock_timeout=10)
    except LockError as error:
        raise AssertionError(f"{error}; holders: {_lock_holders(state_file.lock_path)}") from None
    with applied_topology(path) as topo:
        state = topo.state
        assert {n.lifecycle for n in state.nodes.values()} == {Lifecycle.RUNNING}
        assert sorted(daemons_under(tmp_path)) == sorted(topo.pids().values())
        assert topo.run("d", ["echo", "ok"])["d"].stdout == b"ok\n"
    assert daemons_under(tmp_path) == []


@pytest.mark.parametrize("point", ["stopping", "removed"])
def test_destroy_killed_at_each_phase_finishes_on_rerun(point: str, tmp_path: Path) -> None:
    """Killed once nodes are STOPPING, all still recorded, or once some are removed from the
    state and others are not (nodes stopping at once may leave together: then tried again)."""
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    state_file = state_file_for(path, "crash")

    def reached(document: dict[str, Any]) -> bool:
        nodes = document["nodes"].values()
        if point == "stopping":
            return len(nodes) == 4 and any(n["lifecycle"] == "STOPPING" for n in nodes)
        return len(nodes) < 4

    for _attempt in range(5):
        apply_topology(path)
        seen = _kill_when(["destroy", "--auto-approve"], tmp_path, state_file.path, reached)
        if seen is not None and seen["nodes"]:
            break
        destroy_topology(path)
    assert seen is not None, "destroy finished each time: nothing was interrupted"
    assert seen["nodes"], "destroy finished each time: nothing was interrupted"
    destroy_topology(path)
    assert daemons_under(tmp_path) == []
    assert state_file.load().nodes == {}
