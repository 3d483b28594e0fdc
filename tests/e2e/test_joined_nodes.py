"""Use case: a developer joins a topology from their own machine (examples/team-across-machines),
through the real CLI as the README shows, on this machine's loopback (tests/multihost runs the
same across a NAT).

The operator applies and writes dev-bob's one-time credential; "bob" (another directory, as
another machine would be) joins with it, then: status on the operator's side shows dev-bob
RUNNING with a heartbeat taken over the link it opened; exec from bob's directory reaches the
worker through bob's node, and the hub's exec reaches bob's node; a job on bob's node cannot
read the credentials it joined with; the credential works once; leave shows STOPPED; joining
again resumes with the stored credentials; a renewed credential makes the old one revoked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_helpers import applied, codebolt, copy_example, ok

from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.model.state import Lifecycle, NodeState

pytestmark = pytest.mark.slow


@contextmanager
def joined(directory: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``codebolt join ARGS`` in ``directory`` until its node runs; stopped (SIGINT) after."""
    directory.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", "join", *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "running here" in line:
                break
        else:
            raise AssertionError(f"join did not run its node: {''.join(lines)}")
        process.said = "".join(lines)  # type: ignore[attr-defined]
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(15)
        if process.stdout is not None:
            process.stdout.close()


def node_status(folder: Path, node: str) -> dict[str, object]:
    rows = json.loads(ok(codebolt("status", "--json", cwd=folder)))["nodes"]
    (row,) = [r for r in rows if r["name"] == node]
    return dict(row)


def wait_status(folder: Path, node: str, shown: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        row = node_status(folder, node)
        state = f"{row['lifecycle']} {row['heartbeat_error']}"
        if shown in state or time.monotonic() > deadline:
            assert shown in state, row
            return row
        time.sleep(0.3)


def _node(folder: Path) -> NodeState:
    return state_file_for(folder / "topology.yaml", "team").load().nodes["dev-bob"]


async def _watch_passes(path: Path, count: int) -> None:
    """``count`` passes of what ``codebolt watch`` runs, 0.3 s apart."""
    watch = Reconciler(path)
    try:
        for _ in range(count):
            await watch.pass_once()
            await asyncio.sleep(0.3)
    finally:
        await watch.prober.close()


def test_a_developer_joins_works_leaves_and_rejoins(tmp_path: Path) -> None:
    folder = copy_example("team-across-machines", tmp_path)
    text = (folder / "topology.yaml").read_text()  # any free port: tests run side by side
    text = text.replace("host: 0.0.0.0, port: 3100", "host: 0.0.0.0")
    text = text.replace("  - dev-bob -> hub\n", "  - {from: dev-bob, to: hub, sync: push}\n")
    text = text.replace("name: team\n", "name: team\nheartbeat: {interval: 0.2, timeout: 0.5}\n")
    (folder / "topology.yaml").write_text(text + "  - hub -> dev-bob\n")  # as the README says
    bob = tmp_path / "bob"
    with applied(folder):
        # What the README shows: apply names the command that hands out the credential.
        again = ok(codebolt("apply", "--auto-approve", cwd=folder))
        assert "No changes" in again or "0 change" in again, again
        described = ok(codebolt("describe", "dev-bob", cwd=folder))
        assert "ready to be joined (codebolt state credentials dev-bob)" in described
        assert "sealed" not in described  # its offer's ciphertext is its join point's business
        listed = codebolt("jobs", "list", cwd=folder)
        assert listed.returncode == 0
        assert "dev-bob" not in listed.stderr, listed.stderr  # not asked: nothing here reaches it
        before = node_status(folder, "dev-bob")
        assert "not joined yet" in str(before["heartbeat_error"])
        told = ok(codebolt("state", "credentials", "dev-bob", "-o", "bob.json", cwd=folder))
        assert "codebolt join wss://ADDRESS:" in told
        credentials = folder / "bob.json"
        assert credentials.stat().st_mode & 0o777 == 0o600
        url = json.loads(credentials.read_text())["url"].replace("join-point.invalid", "127.0.0.1")

        with joined(bob, url, "--credentials", str(credentials)) as joining:
            said = joining.said  # type: ignore[attr-defined]
            assert f"dev-bob: joined topology 'team' through 'hub' at {url}" in said
            home = bob / ".codebolt" / "joined"
            assert home.stat().st_mode & 0o777 == 0o700
            assert (home / "launch.json").stat().st_mode & 0o777 == 0o600
            row = wait_status(folder, "dev-bob", "RUNNING ")
            assert row["heartbeat_ms"] is not None  # a ping over the link dev-bob opened
            # dev-bob -> hub syncs: not from here (nothing here reaches bob), from bob's machine.
            asked = ok(codebolt("sync", cwd=folder))
            assert "dev-bob joined from its own machine and syncs from there" in asked, asked
            pushed = ok(codebolt("sync", cwd=bob))
            assert "dev-bob->hub push dev-bob => hub:" in pushed, pushed
            here = ok(codebolt("status", cwd=bob))  # on bob's machine: his node and its links
            assert f"dev-bob: joined topology 'team' at {url}; running here (pid" in here
            assert "  hub: link open" in here

            said = ok(
                codebolt("exec", "worker", "--", "sh", "-c", "echo hi from $CODEBOLT_NODE", cwd=bob)
            )
            assert said.strip() == "hi from worker"
            there = ok(
                codebolt(
                    "exec", "dev-bob", "--", "sh", "-c", "echo $CODEBOLT_NODE; pwd", cwd=folder
                )
            )
            assert there.split() == ["dev-bob", str(home / "node" / "workspace")]
            peek = codebolt("exec", "dev-bob", "--", "cat", str(home / "launch.json"), cwd=folder)
            assert peek.returncode != 0
            assert "admin_token_digest" not in peek.stdout

            again = codebolt(
                "join",
                url,
                "--credentials",
                str(credentials),
                "--dir",
                "other",
                cwd=bob,
                timeout=30,
            )
            assert again.returncode != 0
            assert "already used" in again.stderr, again.stderr

            ok(codebolt("leave", cwd=bob))
            assert joining.wait(15) == 0
            assert joining.stdout is not None
            assert "dev-bob: left" in joining.stdout.read()
        wait_status(folder, "dev-bob", "STOPPED (left at")
        # codebolt watch records it STOPPED (its neighbours saw it leave), and never replaces
        # it: a new node would need a new join.
        held = _node(folder)
        asyncio.run(_watch_passes(folder / "topology.yaml", 8))
        kept = _node(folder)
        assert kept.join_credential == held.join_credential
        assert kept.lifecycle is Lifecycle.STOPPED
        assert "left at" in str(kept.history[-1].reason)

        with joined(bob):  # the stored credentials: nothing exchanged
            wait_status(folder, "dev-bob", "RUNNING ")
            asyncio.run(_watch_passes(folder / "topology.yaml", 2))
            back = _node(folder)
            assert back.lifecycle is Lifecycle.RUNNING
            assert "joined again" in str(back.history[-1].reason)
            assert back.join_credential == held.join_credential
            # Renewing cuts the machine that joined off: its tokens open no edge any more.
            ok(codebolt("state", "credentials", "dev-bob", "--renew", "-o", "new.json", cwd=folder))
            cut = codebolt("exec", "worker", "--", "true", cwd=bob, timeout=60)
            assert cut.returncode != 0, cut.stdout
            wait_status(folder, "dev-bob", "lost")
        old = codebolt(
            "join", url, "--credentials", str(credentials), "--dir", "third", cwd=bob, timeout=30
        )
        assert old.returncode != 0
        assert "revoked" in old.stderr, old.stderr


def test_join_stops_its_node_when_its_terminal_closes_and_says_when_the_node_died(
    tmp_path: Path,
) -> None:
    folder = copy_example("team-across-machines", tmp_path)
    text = (folder / "topology.yaml").read_text()
    (folder / "topology.yaml").write_text(
        text.replace("host: 0.0.0.0, port: 3100", "host: 0.0.0.0")
    )
    alice = tmp_path / "alice"
    with applied(folder):
        ok(codebolt("state", "credentials", "dev-alice", "-o", "alice.json", cwd=folder))
        url = json.loads((folder / "alice.json").read_text())["url"]
        url = url.replace("join-point.invalid", "127.0.0.1")
        with joined(alice, url, "--credentials", str(folder / "alice.json")) as joining:
            daemon = json.loads((alice / ".codebolt" / "joined" / "joined.json").read_text())["pid"]
            joining.send_signal(signal.SIGHUP)  # the terminal it ran in closed
            assert joining.wait(15) == 0
            assert joining.stdout is not None
            assert "dev-alice: left" in joining.stdout.read()
        assert not Path(f"/proc/{daemon}").exists()  # no daemon left running unseen

        with joined(alice) as joining:
            daemon = json.loads((alice / ".codebolt" / "joined" / "joined.json").read_text())["pid"]
            os.kill(daemon, signal.SIGKILL)
            assert joining.wait(15) == 1
            assert joining.stdout is not None
            assert "its daemon ended (killed by SIGKILL)" in joining.stdout.read()
