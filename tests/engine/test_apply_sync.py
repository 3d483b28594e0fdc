"""``apply`` carries narrative history along edges that declare ``sync``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.operations import apply_topology

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: story
nodes: {a: {}, b: {}}
edges:
  - {from: a, to: b, sync: push}
"""


def _codebolt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codebolt_topo.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_apply_pushes_a_snapshot_from_a_to_b(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        topo.run("a", ["sh", "-c", "echo trained > model.txt"])
        made = _codebolt("narrative", "snapshot", "--node", "a", "--objective", "obj",
                         "--thread", "t1", "--run", "r1", "--name", "after-training",
                         cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        apply_topology(path)  # no node changes: only the sync runs
        log = _codebolt("narrative", "log", "--node", "b", cwd=tmp_path)
        assert log.returncode == 0, log.stderr
        assert "after-training" in log.stdout
        assert "t1" in log.stdout
