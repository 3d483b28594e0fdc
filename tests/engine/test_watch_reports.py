"""``codebolt watch`` reports a node's state when it changes, not on every pass (issue 17, item
7: one ``restart: never`` node that stayed dead was logged 26 times in 20 s), and journals why
nodes moved for ``codebolt describe``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.events import EventJournal
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: quiet
heartbeat: {interval: 200ms, timeout: 200ms, suspect_after: 800ms, fail_after: 2s}
nodes:
  a: {}
  c: {restart: never}
edges: [a -> c]
"""


def test_a_dead_restart_never_node_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        pid = topo.pids()["c"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        messages: list[str] = []
        reconciler = Reconciler(path, report=messages.append)

        async def passes() -> None:
            try:
                for _ in range(12):
                    report = await reconciler.pass_once()
                    assert report.held_back.get("c") == "restart: never"
                    await asyncio.sleep(0.05)
            finally:
                await reconciler.prober.close()

        asyncio.run(passes())
        about_c = [m for m in messages if m.startswith("c: ")]
        assert about_c == [f"c: failed (process {pid} is gone)"]
        journal = EventJournal(state_file_for(path, "quiet").runtime_dir)
        failed = journal.last("c", "failed")
        assert failed is not None
        assert failed.message == f"process {pid} is gone"
        assert [e.kind for e in journal.read("c")][:3] == ["starting", "running", "configured"]


def test_watch_reports_a_replacement_with_env_values_masked(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: masked\nnodes:\n  a: {env: {KEY: old-secret}}\n")
    with applied_topology(path):
        path.write_text("name: masked\nnodes:\n  a: {env: {KEY: new-secret}}\n")
        messages: list[str] = []
        reconciler = Reconciler(path, report=messages.append)

        async def one_pass() -> None:
            try:
                await reconciler.pass_once()
            finally:
                await reconciler.prober.close()

        asyncio.run(one_pass())
        assert "a: replaced (env.KEY: (sensitive) -> (sensitive))" in messages
        assert not [m for m in messages if "secret" in m]
        journal = EventJournal(state_file_for(path, "masked").runtime_dir)
        assert not [e for e in journal.read() if "secret" in e.message]
