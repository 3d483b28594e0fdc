"""The live view: ``status --watch`` shows each node's state and since when, its last heartbeat
and its hops from the entry, and keeps showing when a hung node last answered."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_topology import applied_topology
from rich.console import Console

from codebolt_topo.cli.status_view import render_table
from codebolt_topo.engine.status import NodeStatus, StatusCollector
from codebolt_topo.model.state import State

pytestmark = pytest.mark.slow

TOPOLOGY = "name: live\nnodes: {a: {}, b: {}, c: {}}\nedges: [a -> b -> c]\n"


def _text(state: State, rows: list[NodeStatus]) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(render_table(state, rows))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_status_rows_show_state_since_heartbeat_and_hops(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path) as topo:
        collector = StatusCollector(path, heartbeat_timeout=0.5)

        async def twice() -> tuple[list[NodeStatus], State, list[NodeStatus], float]:
            try:
                _, first = await collector.collect()
                os.kill(topo.pids()["c"], signal.SIGSTOP)
                start = time.monotonic()
                state, second = await collector.collect()
                return first, state, second, time.monotonic() - start
            finally:
                os.kill(topo.pids()["c"], signal.SIGCONT)
                await collector.close()

        first, state, second, took = asyncio.run(twice())
        recorded = topo.state.nodes
        rows = {row.name: row for row in first}
        assert {n: (r.lifecycle, r.hops) for n, r in rows.items()} == {
            "a": ("RUNNING", 0),
            "b": ("RUNNING", 1),
            "c": ("RUNNING", 2),
        }
        for name, row in rows.items():
            assert row.since == recorded[name].history[-1].at  # the transition's timestamp
            assert row.heartbeat_ms is not None
            assert row.last_heartbeat is not None
        hung = {row.name: row for row in second}["c"]
        assert took < 3, "a hung node held up the status refresh"
        assert hung.heartbeat_ms is None
        assert "no answer within 0.5 s" in hung.heartbeat_error
        assert hung.last_heartbeat == rows["c"].last_heartbeat  # when it last answered
        assert hung.as_json()["last_heartbeat"] == hung.last_heartbeat
        text = _text(state, second)
        for column in ("state", "since", "heartbeat", "hops"):
            assert column in text
        line = next(line for line in text.splitlines() if " c " in line)
        assert "not answering" in line
        assert "none, last " in line


def test_status_watch_refreshes_until_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    with applied_topology(path):
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codebolt_topo.cli.main",
                "status",
                "--watch",
                "--interval",
                "0.2",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "250"},
        )
        time.sleep(3)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=20)
        assert watcher.returncode == 0, err
        text = out.decode()
        assert "topology live" in text
        for name, hops in (("a", "0"), ("b", "1"), ("c", "2")):
            line = next(line for line in text.splitlines() if f" {name} " in line)
            assert "RUNNING" in line
            assert " ms " in line
            assert f" {hops} " in line
