"""Saved plans, targeted applies and forced replacements, through the real command against real
local daemons (issue 17, item 2): ``plan -out FILE`` then ``apply FILE`` does exactly what was
reviewed or nothing; ``--target`` changes a node and rewires only its neighbours; ``--replace``
gives a node a fresh process; ``logs -f`` follows a node across its replacement."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import codebolt

from codebolt_topo.engine.statefile import StateFile

pytestmark = pytest.mark.slow

CHAIN = "name: {name}\nnodes:\n  a: {{}}\n  b: {{env: {{MODE: {mode}}}}}\nedges: [a -> b]\n"


def _pids(directory: Path, name: str) -> dict[str, int]:
    state = StateFile(directory / ".codebolt", name).load()
    return {n: int(node.handle["pid"]) for n, node in state.nodes.items() if node.handle}


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_a_saved_plan_applies_once_then_is_stale(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(CHAIN.format(name="saved", mode="slow"))
    try:
        first = _ok(codebolt("plan", "-out", "first.plan", cwd=tmp_path))  # before any state
        assert "Saved the plan to first.plan" in first.stdout
        assert stat.S_IMODE(os.stat(tmp_path / "first.plan").st_mode) == 0o600
        applied = _ok(codebolt("apply", "first.plan", cwd=tmp_path))  # no prompt: reviewed
        assert "Apply complete: 2 change(s) (saved plan first.plan)." in applied.stdout
        again = codebolt("apply", "first.plan", cwd=tmp_path)
        assert again.returncode == 1
        assert "saved plan is stale: it was made before topology 'saved' had a state" in (
            again.stderr
        )

        (tmp_path / "topology.yaml").write_text(CHAIN.format(name="saved", mode="fast"))
        _ok(codebolt("plan", "-out", "env.plan", cwd=tmp_path))
        saved = (tmp_path / "env.plan").read_text()
        assert "fast" not in saved
        assert "(sensitive)" in saved
        before = _pids(tmp_path, "saved")
        _ok(codebolt("apply", "env.plan", cwd=tmp_path))
        after = _pids(tmp_path, "saved")
        assert after["a"] == before["a"]
        assert after["b"] != before["b"]
        serial = StateFile(tmp_path / ".codebolt", "saved").load().serial
        stale = codebolt("apply", "env.plan", cwd=tmp_path)
        assert stale.returncode == 1
        assert "the state is now at serial" in stale.stderr
        assert StateFile(tmp_path / ".codebolt", "saved").load().serial == serial  # untouched
    finally:
        codebolt("destroy", "--auto-approve", cwd=tmp_path)


def test_a_saved_plan_is_refused_when_the_state_or_the_file_moved(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(CHAIN.format(name="moved", mode="slow"))
    try:
        _ok(codebolt("apply", "--auto-approve", cwd=tmp_path))
        (tmp_path / "topology.yaml").write_text(CHAIN.format(name="moved", mode="fast"))
        _ok(codebolt("plan", "-out", "p.plan", cwd=tmp_path))
        (tmp_path / "topology.yaml").write_text(CHAIN.format(name="moved", mode="other"))
        changed = codebolt("apply", "p.plan", cwd=tmp_path)
        assert changed.returncode == 1
        assert "changed since the plan was made" in changed.stderr

        (tmp_path / "topology.yaml").write_text(CHAIN.format(name="moved", mode="fast"))
        _ok(codebolt("plan", "-out", "p.plan", cwd=tmp_path))
        _ok(codebolt("apply", "--auto-approve", cwd=tmp_path))  # someone else applied first
        serial = codebolt("apply", "p.plan", cwd=tmp_path)
        assert serial.returncode == 1
        assert "it was made at state serial" in serial.stderr

        _ok(codebolt("plan", "-out", "p.plan", cwd=tmp_path))
        _ok(codebolt("destroy", "--auto-approve", cwd=tmp_path))
        (tmp_path / ".codebolt" / "moved.state.json").unlink()  # a new instance: new lineage
        _ok(codebolt("apply", "--auto-approve", cwd=tmp_path))
        lineage = codebolt("apply", "p.plan", cwd=tmp_path)
        assert lineage.returncode == 1
        assert "it was made for state lineage" in lineage.stderr

        with_var = codebolt("apply", "p.plan", "--var", "x=1", cwd=tmp_path)
        assert with_var.returncode == 1
        assert "is a saved plan" in with_var.stderr
    finally:
        codebolt("destroy", "--auto-approve", cwd=tmp_path)


def test_target_changes_one_node_and_rewires_only_its_neighbours(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: targeted\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n")
    try:
        _ok(codebolt("apply", "--auto-approve", cwd=tmp_path))
        path.write_text(
            "name: targeted\nnodes: {a: {}, b: {}, c: {}, d: {}}\nedges: [a -> b, b -> c]\n"
        )
        plan = _ok(codebolt("plan", "--target", "c", "--json", cwd=tmp_path))
        document = json.loads(plan.stdout)
        assert [(a["action"], a["node"]) for a in document["actions"]] == [
            ("create", "c"),
            ("update", "a"),
            ("update", "b"),
        ]  # b sends to c, a routes to it
        assert document["left_out"] == 1  # d waits for a full apply
        text = _ok(codebolt("plan", "--target", "c", cwd=tmp_path)).stdout
        assert "Targeting is in effect: 1 other change(s)" in text

        applied = _ok(codebolt("apply", "--target", "c", "--auto-approve", cwd=tmp_path))
        assert "targeting is in effect" in applied.stderr
        assert sorted(_pids(tmp_path, "targeted")) == ["a", "b", "c"]
        routed = _ok(codebolt("exec", "c", "--", "sh", "-c", "echo $CODEBOLT_NODE", cwd=tmp_path))
        assert routed.stdout == "c\n"  # b was rewired to reach the new c

        rest = json.loads(_ok(codebolt("plan", "--json", cwd=tmp_path)).stdout)
        assert [(a["action"], a["node"]) for a in rest["actions"]] == [("create", "d")]
        unknown = codebolt("apply", "--target", "zz", "--auto-approve", cwd=tmp_path)
        assert unknown.returncode == 1
        assert "--target 'zz': no such node" in unknown.stderr
    finally:
        codebolt("destroy", "--auto-approve", cwd=tmp_path)


def test_replace_gives_a_node_a_fresh_process_and_logs_follow_it(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(
        "name: renew\nnodes: {a: {}, b: {}, c: {}}\nedges: [a -> b -> c]\n"
    )
    follower = None
    try:
        _ok(codebolt("apply", "--auto-approve", cwd=tmp_path))
        before = _pids(tmp_path, "renew")
        assert json.loads(_ok(codebolt("plan", "--json", cwd=tmp_path)).stdout)["actions"] == []
        followed = tmp_path / "followed.log"
        with followed.open("w") as sink:
            follower = subprocess.Popen(
                [sys.executable, "-m", "codebolt_topo.cli.main", "logs", "b", "-f", "--tail", "0"],
                cwd=tmp_path,
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(1.0)  # the follower has read the old log to its end

        plan = json.loads(_ok(codebolt("plan", "--replace", "b", "--json", cwd=tmp_path)).stdout)
        assert [(a["action"], a["node"]) for a in plan["actions"]] == [
            ("replace", "b"),
            ("update", "a"),
        ]
        assert plan["actions"][0]["reasons"][0]["message"] == "replacement requested (--replace)"
        _ok(codebolt("apply", "--replace", "b", "--auto-approve", cwd=tmp_path))
        after = _pids(tmp_path, "renew")
        assert after["b"] != before["b"]
        assert (after["a"], after["c"]) == (before["a"], before["c"])
        routed = _ok(codebolt("exec", "c", "--", "sh", "-c", "echo $CODEBOLT_NODE", cwd=tmp_path))
        assert routed.stdout == "c\n"  # a reaches the new b, which reaches c

        deadline = time.monotonic() + 15
        while f"(pid {after['b']})" not in followed.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = followed.read_text()
        assert "node b of renew listening on 127.0.0.1:" in seen  # the new daemon's log
        assert f"(pid {after['b']})" in seen
        assert f"(pid {before['b']})" not in seen  # --tail 0: nothing of the old one
    finally:
        if follower is not None:
            follower.kill()
            follower.wait()
        codebolt("destroy", "--auto-approve", cwd=tmp_path)
