"""Restart policies against real daemons: SIGTERM (a stop on request) is not a crash.

The daemon records a graceful stop in its state directory; the local provider reports it as a
clean exit; ``restart: on-failure`` leaves such a node STOPPED while ``always`` brings it back,
and a SIGKILLed daemon (no record) is replaced under ``on-failure``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.model.state import Lifecycle
from codebolt_topo.node.clean_stop import CLEAN_STOP_FILE, stopped_cleanly
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not process_running(pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"daemon {pid} did not exit")


@pytest.mark.parametrize(
    ("policy", "sig", "replaced"),
    [
        ("on-failure", signal.SIGTERM, False),
        ("always", signal.SIGTERM, True),
        ("on-failure", signal.SIGKILL, True),
    ],
)
def test_a_daemon_stopped_on_request_is_not_a_failure(
    policy: str, sig: signal.Signals, replaced: bool, tmp_path: Path
) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps(
            {"name": "stops", "nodes": {"a": {}, "b": {"restart": policy}}, "edges": ["a -> b"]}
        )
    )
    with applied_topology(path) as topo:
        old = topo.pids()["b"]
        node_dir = topo.state.nodes["b"].handle["dir"]
        os.kill(old, sig)
        _wait_gone(old)
        assert stopped_cleanly(node_dir, old) is (sig == signal.SIGTERM)
        report = asyncio.run(Reconciler(path).pass_once())
        b = topo.state.nodes["b"]
        if replaced:
            assert [a.kind.value for a in report.applied if a.node == "b"] == ["replace"]
            assert b.lifecycle is Lifecycle.RUNNING
            assert topo.pids()["b"] != old
            assert topo.run("b", ["echo", "back"])["b"].stdout == b"back\n"
        else:
            assert report.held_back == {"b": "restart: on-failure, and it was stopped on request"}
            assert b.lifecycle is Lifecycle.STOPPED
            assert [h.state for h in b.history[-2:]] == [Lifecycle.STOPPING, Lifecycle.STOPPED]
            assert (Path(node_dir) / CLEAN_STOP_FILE).read_text().strip() == str(old)
