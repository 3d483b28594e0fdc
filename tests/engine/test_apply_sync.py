"""``apply`` carries narrative history along edges that declare ``sync``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.operations import apply_topology
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.engine.sync import snapshot_nodes

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: story
nodes: {a: {}, b: {}}
edges:
  - {from: a, to: b, sync: push}
"""


def _codebolt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apply_pushes_a_snapshot_from_a_to_b(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        topo.run("a", ["sh", "-c", "echo trained > model.txt"])
        made = _codebolt(
            "narrative",
            "snapshot",
            "--node",
            "a",
            "--objective",
            "obj",
            "--thread",
            "t1",
            "--run",
            "r1",
            "--name",
            "after-training",
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
        apply_topology(path)  # no node changes: only the sync runs
        log = _codebolt("narrative", "log", "--node", "b", cwd=tmp_path)
        assert log.returncode == 0, log.stderr
        assert "after-training" in log.stdout
        assert "t1" in log.stdout


def test_watch_syncs_every_interval_and_incrementally(tmp_path: Path) -> None:
    """``codebolt watch`` (the Reconciler) moves history along ``sync:`` edges on its own, and
    the exchanges after the first carry only what changed."""
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        topo.run("a", ["sh", "-c", "head -c 200000 /dev/urandom > data.bin"])
        first = asyncio.run(snapshot_nodes(path, ["a"], "obj", "w1", "r1", name="first"))["a"]
        messages: list[str] = []

        def pushes() -> list[str]:
            return [m for m in messages if m.startswith("a->b push a => b:")]

        async def watch() -> None:
            stop = asyncio.Event()
            reconciler = Reconciler(path, report=messages.append, sync_interval=0.3)
            task = asyncio.create_task(reconciler.run(stop))
            try:
                await _until(lambda: any("1 created" in m for m in pushes()))
                await asyncio.to_thread(topo.run, "a", ["sh", "-c", "echo more > b.txt"])
                await snapshot_nodes(path, ["a"], "obj", "w1", "r2", name="second")
                await _until(lambda: any("1 updated" in m for m in pushes()))
            finally:
                stop.set()
                await task

        asyncio.run(watch())
        created = next(m for m in pushes() if "1 created" in m)
        updated = next(m for m in pushes() if "1 updated" in m)
        assert _size(updated) < _size(created) / 10  # incremental: data.bin does not travel again
        log = _codebolt("narrative", "log", "--node", "b", cwd=tmp_path)
        assert log.returncode == 0, log.stderr
        assert "second" in log.stdout
        assert first["commit"][:12] in log.stdout


async def _until(ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "watch did not sync in time"
        await asyncio.sleep(0.1)


def _size(line: str) -> int:
    return int(line.split(": ", 1)[1].split(" bytes", 1)[0])
