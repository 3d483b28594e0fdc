"""``codebolt watch`` as a service: /metrics and /healthz on loopback, JSON logs, detached with a
pid file, a systemd unit running the same command, and one leader among watchers."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from watchers import Watcher, wait_until

from codebolt_topo.engine.leadership import Leadership
from codebolt_topo.engine.lease import FileLeaseStore
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.service import PidFile
from codebolt_topo.model.state import Lifecycle

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: svc
heartbeat: {interval: 0.5s, timeout: 2s}
nodes: {a: {}, b: {}}
edges: [a -> b]
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("svc")
    path = directory / "topology.yaml"
    path.write_text(TOPOLOGY)
    apply_topology(path)
    try:
        yield directory
    finally:
        destroy_topology(path)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = _get(f"{url}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_and_health_of_a_watch_that_heals(applied: Path) -> None:
    watcher = Watcher(applied, "--metrics-port", "0")
    try:
        url = watcher.wait_for(r"serving (http://127\.0\.0\.1:\d+)/metrics")[1]
        watcher.wait_for("leading the watch")
        # The line is written as the lease is taken; /healthz agrees within moments (not at
        # the end of the first pass, which may take seconds on a loaded machine).
        wait_until(lambda: json.loads(_get(f"{url}/healthz")[1])["role"] == "leader", 5, "leader")
        status, body = _get(f"{url}/healthz")
        assert status == 200
        assert json.loads(body)["role"] == "leader"
        state_file = state_file_for(applied / "topology.yaml", "svc")
        victim = int(state_file.load().nodes["b"].handle["pid"])
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: _samples(url).get(("codebolt_restarts_total", (("node", "b"),)), 0) >= 1,
            60,
            "the restart of b in /metrics",
        )
        wait_until(
            lambda: _samples(url)[("codebolt_nodes", (("lifecycle", "RUNNING"),))] == 2,
            60,
            "two RUNNING nodes in /metrics",
        )
        samples = _samples(url)
        assert samples[("codebolt_heartbeat_latency_seconds_count", ())] > 0
        assert samples[("codebolt_reconcile_pass_seconds_count", ())] > 0
        assert samples[("codebolt_watch_leader", ())] == 1
        assert samples[("codebolt_watch_lease_term", ())] >= 1
        assert ("codebolt_synced_bytes_total", ()) in samples
        assert samples[("codebolt_nodes", (("lifecycle", "FAILED"),))] == 0
        assert _get(f"{url}/nope")[0] == 404
        assert state_file.load().nodes["b"].lifecycle is Lifecycle.RUNNING
    finally:
        watcher.close()
    assert any("b: replaced" in line for line in watcher.lines), watcher.lines


def test_detached_with_a_pid_file_and_stopped(applied: Path) -> None:
    def codebolt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codebolt_topo.cli.main", "watch", *args],
            cwd=applied,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = codebolt("--detach")
    assert started.returncode == 0, started.stderr
    pid_file = PidFile(applied / ".codebolt" / "svc" / "watch.pid")
    pid = pid_file.read()
    assert pid is not None
    assert f"pid {pid}" in started.stdout
    assert pid_file.held()
    assert os.getsid(pid) == pid  # its own session: the terminal closing does not stop it
    again = codebolt("--detach")
    assert again.returncode == 1
    assert f"a watcher already runs with pid file {pid_file.path} (pid {pid})" in again.stderr
    stopped = codebolt("--stop")
    assert f"stopped the watcher (pid {pid})" in stopped.stdout
    assert not pid_file.path.exists()
    log = (applied / ".codebolt" / "svc" / "watch.log").read_text()
    assert "leading the watch" in log
    assert "stopped watching; nodes keep running" in log
    assert codebolt("--stop").stdout.strip() == "no watcher was running"


def test_the_unit_runs_the_same_command(applied: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "codebolt_topo.cli.main",
            "watch",
            "--install-unit",
            "--unit-dir",
            str(tmp_path),
            "--metrics-port",
            "0",
            "--log-json",
        ],
        cwd=applied,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "codebolt-watch-svc.service").read_text()
    fields = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert fields["WorkingDirectory"] == str(applied)
    assert fields["Restart"] == "on-failure"
    assert fields["EnvironmentFile"].startswith("-")
    assert fields["EnvironmentFile"].endswith("/codebolt/svc.env")
    argv = shlex.split(fields["ExecStart"].replace("%%", "%"))
    assert argv[:3] == [sys.executable, "-m", "codebolt_topo.cli.main"]
    assert argv[3:5] == ["watch", str(applied / "topology.yaml")]
    assert "--metrics-port" in argv
    assert "--install-unit" not in argv
    assert "CODEBOLT_STATE_KEY=" not in unit
    # What systemd would start: the same watch, serving its health.
    process = subprocess.Popen(
        argv, cwd=fields["WorkingDirectory"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            message = json.loads(line)["message"]
            if message.startswith("serving "):
                url = message.split()[1].removesuffix("/metrics")
                break
        status, body = _get(f"{url}/healthz")
        assert status == 200
        assert json.loads(body)["topology"] == "svc"
    finally:
        process.terminate()
        process.wait(30)
        assert process.stderr is not None
        process.stderr.close()


def test_a_leader_that_lost_its_lease_stands_by(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path / "x.lease")
    said: list[str] = []
    first = Leadership(store, ttl=0.2, holder="first", report=said.append)
    second = Leadership(store, ttl=30, holder="second", report=said.append)
    assert first.step()
    assert not second.step()
    assert "standing by: the watch is led by first, term 1" in said
    wait_until(lambda: second.step(), 30, "the lease to expire")
    assert second.lease is not None
    assert second.lease.term == 2
    assert not first.step()  # paused past its ttl: it must not act any more
    assert "lost the watch lease (term 1): standing by" in said
    second.release()
    assert first.step()  # a released lease is taken at once
    assert time.time() > 0
