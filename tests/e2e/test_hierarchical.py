"""Use case: hierarchical (examples/hierarchical), run as its README section shows.

An agent on the parent node spawns a child topology through the parent's children API, runs
work in it and closes it; a child left running is closed when the parent is destroyed (its
processes gone, its state gone with the parent's), and the children of a parent killed with
SIGKILL are stopped by its replacement.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from e2e_helpers import codebolt, copy_example, ok

from codebolt_topo.providers.docker.engine import DockerEngine
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow


def test_an_agent_on_the_parent_spawns_and_closes_a_child(tmp_path: Path) -> None:
    folder = copy_example("hierarchical", tmp_path)
    children = folder / ".codebolt" / "hierarchy" / "nodes" / "parent" / "children"
    ok(codebolt("apply", "--auto-approve", cwd=folder))
    try:
        out = ok(codebolt("exec", "parent", "--", "python3", "agent.py", cwd=folder))
        assert out.splitlines() == [
            "parent: spawned child 'scratch': {'build': 'RUNNING', 'tester': 'RUNNING'}",
            "parent: scratch/tester said: tests pass on tester of scratch (exit 0)",
            "parent: closed child 'scratch' (2 nodes stopped); children now: {}",
        ]
        assert not (children / "scratch").exists()

        kept = ok(codebolt("exec", "parent", "--", "python3", "agent.py", "--keep", cwd=folder))
        assert "parent: keeping 'scratch'" in kept
        state = json.loads((children / "scratch" / ".codebolt" / "scratch.state.json").read_text())
        pids = [int(node["handle"]["pid"]) for node in state["nodes"].values()]
        assert len(pids) == 2
        assert all(process_running(pid) for pid in pids)

        # Only jobs of a node with the plugin get the API.
        refused = codebolt("exec", "lead", "--", "python3", str(folder / "agent.py"), cwd=folder)
        assert refused.returncode == 1
        assert "no $CODEBOLT_CHILDREN" in refused.stderr

        # A parent killed outright cannot close its children: its replacement does.
        os.kill(_parent_pid(folder), signal.SIGKILL)
        ok(codebolt("apply", "--auto-approve", cwd=folder))
        _wait_gone(pids)
        ok(codebolt("exec", "parent", "--", "python3", "agent.py", "--keep", cwd=folder))
        state = json.loads((children / "scratch" / ".codebolt" / "scratch.state.json").read_text())
        pids = [int(node["handle"]["pid"]) for node in state["nodes"].values()]
    finally:
        ok(codebolt("destroy", "--auto-approve", cwd=folder))
    assert [pid for pid in pids if process_running(pid)] == []
    assert not children.exists()


def test_destroying_a_dead_parent_closes_its_children(tmp_path: Path) -> None:
    """The parent dies with its child running; ``codebolt destroy`` (no replacement) still
    stops the child's daemons."""
    folder = copy_example("hierarchical", tmp_path)
    children = folder / ".codebolt" / "hierarchy" / "nodes" / "parent" / "children"
    ok(codebolt("apply", "--auto-approve", cwd=folder))
    pids: list[int] = []
    try:
        ok(codebolt("exec", "parent", "--", "python3", "agent.py", "--keep", cwd=folder))
        state = json.loads((children / "scratch" / ".codebolt" / "scratch.state.json").read_text())
        pids = [int(node["handle"]["pid"]) for node in state["nodes"].values()]
        os.kill(_parent_pid(folder), signal.SIGKILL)
    finally:
        ok(codebolt("destroy", "--auto-approve", cwd=folder))
    _wait_gone(pids)
    assert not children.exists()


def _parent_pid(folder: Path) -> int:
    state = json.loads((folder / ".codebolt" / "hierarchy.state.json").read_text())
    return int(state["nodes"]["parent"]["handle"]["pid"])


def _wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(process_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if process_running(pid)] == []


@pytest.mark.docker
@pytest.mark.usefixtures("node_image")
def test_a_killed_parents_replacement_removes_its_childrens_containers(tmp_path: Path) -> None:
    """A child topology with a docker node, its parent killed with SIGKILL: the replacement
    parent removes the child's containers and network (found by their state-dir labels)."""
    import docker

    folder = copy_example("hierarchical", tmp_path)
    child = folder / "child.yaml"
    child.write_text(child.read_text().replace("tester: {}", "tester: {provider: docker}"))
    engine = docker.from_env(timeout=60)
    parent_dir = str(folder / ".codebolt" / "hierarchy" / "nodes" / "parent") + "/"

    def ours() -> list[str]:
        found = [
            f"container:{c.name}"
            for c in engine.containers.list(all=True)
            if c.labels.get("org.codebolt.state-dir", "").startswith(parent_dir)
        ]
        found += [
            f"network:{n.name}"
            for n in engine.networks.list()
            if (n.attrs.get("Labels") or {})
            .get("org.codebolt.state-dir", "")
            .startswith(parent_dir)
        ]
        return found

    ok(codebolt("apply", "--auto-approve", cwd=folder))
    try:
        kept = ok(codebolt("exec", "parent", "--", "python3", "agent.py", "--keep", cwd=folder))
        assert "tests pass on tester of scratch (exit 0)" in kept
        assert any(name.startswith("container:") for name in ours()), ours()

        os.kill(_parent_pid(folder), signal.SIGKILL)
        ok(codebolt("apply", "--auto-approve", cwd=folder))
        deadline = time.monotonic() + 30
        while ours() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ours() == [], "the replacement parent left its predecessor's child containers"
    finally:
        ok(codebolt("destroy", "--auto-approve", cwd=folder))
        DockerEngine().remove_where(
            {"label": ["org.codebolt.managed-by=codebolt-topo"]},
            "org.codebolt.state-dir",
            parent_dir,
        )
