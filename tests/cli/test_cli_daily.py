"""The commands people use every day, through the real command against real local daemons:
``describe``, ``logs``, ``jobs`` (list, attach, cancel), ``status`` piped, watched off a terminal
and warning about a state tracked by git, and ``exec`` on a template (issue 17, items 1, 4-6)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import applied_through_the_cli, codebolt

from codebolt_topo.engine.statefile import StateFile

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: daily
nodes:
  a: {}
  b: {env: {TOKEN: s3cret-value}}
  c: {}
edges: [a -> b -> c]
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with applied_through_the_cli(tmp_path_factory, "daily", TOPOLOGY) as directory:
        yield directory


def _background(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_job(cwd: Path, node: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = json.loads(codebolt("jobs", "--json", cwd=cwd).stdout)
        # Started: a job is listed from its admission, before its process has a pid.
        found = [job for job in listed["jobs"] if job["node"] == node and job["pid"] is not None]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no job showed up on {node}")


def test_describe_shows_settings_record_wiring_capabilities_and_history(applied: Path) -> None:
    result = codebolt("describe", "b", cwd=applied)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    state = StateFile(applied / ".codebolt", "daily").load()
    for expected in (
        "Name:              b",
        "Provider:          local",
        "Lifecycle:         RUNNING (alive)",
        f"Endpoint:          {state.nodes['b'].url}",
        "Sends work to:     c",
        "Accepts work from: a",
        "Plugins:           remote-execution",
        'env: {"TOKEN": "(sensitive)"}',
        "Capabilities:",
        "Transitions:",
        "RUNNING",
        "Node info:",
    ):
        assert expected in text, (expected, text)
    assert "s3cret-value" not in text
    assert state.nodes["b"].admin_token not in text
    shown = codebolt("describe", "b", "--show-sensitive", cwd=applied).stdout
    assert '"TOKEN": "s3cret-value"' in shown

    document = json.loads(codebolt("describe", "b", "--json", cwd=applied).stdout)
    assert document["lifecycle"] == "RUNNING"
    assert document["alive"] is True
    assert document["wiring"]["peers"] == ["c"]
    assert document["capabilities"]["detected"]  # what the daemon found where it runs
    assert [t["state"] for t in document["transitions"]][-2:] == ["STARTING", "RUNNING"]
    assert document["transitions"][-1]["reason"] == f"at {state.nodes['b'].url}"
    assert document["info"]["version"]
    assert document["last_start_error"] is None


def test_jobs_are_listed_attached_to_and_cancelled(applied: Path, tmp_path: Path) -> None:
    # The talker says "second" only once the test lets it (no race with a loaded machine: a job
    # that ended before the attach, its output delivered to its own caller, has none to replay).
    gate = tmp_path / "go"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second; exit 3"
    talker = _background("exec", "c", "--", "sh", "-c", script, cwd=applied)
    sleeper = _background("exec", "b", "--", "sleep", "60", cwd=applied)
    try:
        job = _wait_for_job(applied, "c")
        assert job["state"] == "running"
        assert isinstance(job["pid"], int)
        sleeping = _wait_for_job(applied, "b")

        table = codebolt("jobs", cwd=applied)
        assert str(job["id"]) in table.stdout
        assert str(sleeping["id"]) in table.stdout
        assert "sleep 60" in table.stdout  # what each job runs
        assert sleeping["command"] == "sleep 60"
        assert sleeping["owner"] == "a"  # entered the topology at the entry node

        described = codebolt("describe", "b", cwd=applied).stdout
        assert f"{sleeping['id']}  running" in described  # describe lists the node's jobs

        attach = _background("jobs", "attach", str(job["id"])[:10], cwd=applied)
        assert attach.stdout is not None
        assert attach.stdout.readline() == "first\n"  # from the start while it runs
        gate.touch()
        rest, stderr = attach.communicate(timeout=30)
        assert rest == "second\n"  # then live
        assert attach.returncode == 3  # the job's own status
        assert f"attached to job {job['id']} on c" in stderr

        cancelled = codebolt("jobs", "cancel", str(sleeping["id"]), cwd=applied)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"Cancelled job {sleeping['id']} on b (signal SIGTERM)." in cancelled.stdout
        sleeper.communicate(timeout=20)
        assert sleeper.returncode == 128 + signal.SIGTERM  # its exec saw the job killed
        left = json.loads(codebolt("jobs", "--json", cwd=applied).stdout)["jobs"]
        assert all(j["id"] != sleeping["id"] for j in left)
        held = json.loads(codebolt("jobs", "--all", "--json", cwd=applied).stdout)["jobs"]
        assert any(j["id"] == sleeping["id"] and j["state"] == "finished" for j in held)

        again = codebolt("jobs", "cancel", str(sleeping["id"]), cwd=applied)
        assert again.returncode == 1
        assert "already finished" in again.stderr
        unknown = codebolt("jobs", "attach", "no-such-job", cwd=applied)
        assert unknown.returncode == 1
        assert "no job 'no-such-job'" in unknown.stderr
    finally:
        gate.touch()  # the talker's job ends whatever happened above
        for process in (talker, sleeper):
            process.kill()
            process.communicate()  # reaps it and closes its pipes


def test_logs_read_a_node_log_with_tail_since_and_json(applied: Path) -> None:
    everything = codebolt("logs", "b", cwd=applied)
    assert everything.returncode == 0, everything.stderr
    assert "node b of daily listening on 127.0.0.1:" in everything.stdout
    last = codebolt("logs", "b", "--tail", "1", cwd=applied).stdout.splitlines()
    assert last == everything.stdout.splitlines()[-1:]
    recent = codebolt("logs", "b", "--since", "1h", cwd=applied).stdout
    assert recent == everything.stdout
    tomorrow = (datetime.now() + timedelta(days=1)).isoformat(timespec="seconds")
    assert codebolt("logs", "b", "--since", tomorrow, cwd=applied).stdout == ""
    lines = [
        json.loads(line)
        for line in codebolt("logs", "b", "--json", "-n", "2", cwd=applied).stdout.splitlines()
    ]
    assert [line["node"] for line in lines] == ["b", "b"]
    assert all(isinstance(line["at"], float) for line in lines)
    bad = codebolt("logs", "b", "--since", "yesterday", cwd=applied)
    assert bad.returncode == 1
    assert "--since 'yesterday'" in bad.stderr


def test_status_piped_never_cuts_endpoints(applied: Path) -> None:
    result = codebolt("status", cwd=applied, env={"COLUMNS": "40"})
    assert result.returncode == 0, result.stderr
    state = StateFile(applied / ".codebolt", "daily").load()
    for node in state.nodes.values():
        assert str(node.url) in result.stdout
    assert "…" not in result.stdout


def test_status_warns_when_the_state_file_is_tracked_by_git(applied: Path) -> None:
    if subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("git is not installed")
    state_path = applied / ".codebolt" / "daily.state.json"
    clean = codebolt("status", cwd=applied)
    assert "tracked by git" not in clean.stderr
    subprocess.run(["git", "init", "-q"], cwd=applied, check=True)
    try:
        # .codebolt/.gitignore keeps it out of a plain `git add -A`...
        subprocess.run(["git", "add", "-A"], cwd=applied, check=True)
        assert codebolt("status", cwd=applied).stderr.count("tracked by git") == 0
        # ...but a forced add (or a state committed before) is caught
        subprocess.run(["git", "add", "-f", str(state_path)], cwd=applied, check=True)
        warned = codebolt("status", cwd=applied)
        assert f"warning: {state_path} is tracked by git" in warned.stderr
        document = json.loads(codebolt("status", "--json", cwd=applied).stdout)
        assert "tracked by git" in document["warnings"][0]
    finally:
        subprocess.run(["rm", "-rf", str(applied / ".git")], check=True)


def test_status_watch_off_a_terminal_prints_a_line_per_change(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    topology = "name: watchlines\nnodes:\n  p: {}\n  q: {}\nedges: [p -> q]\n"
    with applied_through_the_cli(tmp_path_factory, "watchlines", topology) as directory:
        state = StateFile(directory / ".codebolt", "watchlines").load()
        output = directory / "watch.txt"
        with output.open("w") as sink:
            watcher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "codebolt_topo.cli.main",
                    "status",
                    "--watch",
                    "--interval",
                    "0.3",
                ],
                cwd=directory,
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for(lambda: str(state.nodes["q"].url) in output.read_text())
                pid = int(state.nodes["q"].handle["pid"])
                os.kill(pid, signal.SIGKILL)
                _wait_for(lambda: f" q local FAILED (process {pid} is gone)" in output.read_text())
            finally:
                watcher.send_signal(signal.SIGINT)
                assert watcher.wait(timeout=20) == 0
        text = output.read_text()
        assert text.startswith("topology watchlines (serial")
        assert text.count(str(state.nodes["p"].url)) == 1  # p never changed: no line for it


def _wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_exec_takes_a_template_file_with_variables_after_the_command(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("template")
    (directory / "topology.yaml.j2").write_text(
        "name: templ\nnodes:\n{% for i in range(workers) %}  w{{ i }}: {}\n{% endfor %}"
        "edges: [{fan-out: {root: w0, leaves: [{% for i in range(1, workers) %}w{{ i }}, "
        "{% endfor %}]}}]\n"
    )
    applied = codebolt(
        "apply", "topology.yaml.j2", "--auto-approve", "--var", "workers=2", cwd=directory
    )
    try:
        assert applied.returncode == 0, applied.stderr
        before = codebolt(
            "--var",
            "workers=2",
            "exec",
            "topology.yaml.j2",
            "w1",
            "--",
            "echo",
            "hi from",
            "w1",
            cwd=directory,
        )
        assert before.returncode == 0, before.stderr
        assert before.stdout == "hi from w1\n"
        after = codebolt(
            "exec",
            "topology.yaml.j2",
            "w1",
            "--var",
            "workers=2",
            "--",
            "echo",
            "--var",
            cwd=directory,
        )
        assert after.stdout == "--var\n"  # after --, an option belongs to the command
    finally:
        codebolt(
            "destroy", "topology.yaml.j2", "--auto-approve", "--var", "workers=2", cwd=directory
        )


def test_describe_and_logs_keep_the_last_start_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "topology.yaml").write_text(
            f"name: failing\nnodes:\n  a: {{}}\n  x: {{port: {port}}}\nedges: [a -> x]\n"
        )
        try:
            applied = codebolt("apply", "--auto-approve", cwd=tmp_path)
            assert applied.returncode == 1
            described = codebolt("describe", "x", cwd=tmp_path)
            assert described.returncode == 0, described.stderr
            assert "Lifecycle:         FAILED" in described.stdout
            assert "Last start error:  node 'x': daemon exited during start" in described.stdout
            assert f"127.0.0.1:{port}" in described.stdout
            assert "address already in use" in described.stdout
            document = json.loads(codebolt("describe", "x", "--json", cwd=tmp_path).stdout)
            assert "address already in use" in document["last_start_error"]
            assert document["transitions"][-1]["state"] == "FAILED"
            assert "address already in use" in document["transitions"][-1]["reason"]
            log = codebolt("logs", "x", cwd=tmp_path)
            assert f"node x cannot listen on 127.0.0.1:{port}" in log.stdout
        finally:
            codebolt("destroy", "--auto-approve", cwd=tmp_path)
