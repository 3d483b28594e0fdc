"""The CLI contract of issue 2 that the other CLI tests leave unproven, through the real command.

Exit codes of ``plan --detailed-exitcode`` on a clean and on a broken file, ``exec --from``,
the human ``status`` table, ``graph`` in every text format with FILE defaulting to
./topology.yaml, the confirmation prompt on a real terminal, ``--lock-timeout`` waiting for the
holder, and ``destroy`` leaving no process, port or temporary file behind.
"""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import applied_through_the_cli, codebolt

from codebolt_topo.engine.statefile import StateFile
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: issue2
nodes:
  a: {}
  b: {}
  c: {}
  d: {}
edges: [a -> b -> c, b -> d]
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with applied_through_the_cli(tmp_path_factory, "issue2", TOPOLOGY) as directory:
        yield directory


def test_detailed_exitcode_is_0_without_changes_and_1_on_error(
    applied: Path, tmp_path: Path
) -> None:
    clean = codebolt("plan", "--detailed-exitcode", cwd=applied)
    assert clean.returncode == 0, clean.stderr
    as_json = codebolt("plan", "--json", "--detailed-exitcode", cwd=applied)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["nodes"]["b"]["gateway"] == "active"

    (tmp_path / "topology.yaml").write_text("name: x\nnodes: {a: {}}\nedges: [a -> nowhere]\n")
    for extra in ([], ["--json"]):
        broken = codebolt("plan", "--detailed-exitcode", *extra, cwd=tmp_path)
        assert broken.returncode == 1
        assert "topology.yaml:3:" in broken.stderr
        assert "Traceback" not in broken.stderr


def test_plan_text_shows_where_the_gateway_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    text = codebolt("plan", cwd=tmp_path).stdout
    blocks = dict(re.findall(r"\+ (\w)  \(local\) create\n((?:        .*\n)*)", text))
    assert sorted(blocks) == ["a", "b", "c", "d"]
    assert "gateway" not in blocks["a"]  # nothing sends work to the root: lazy routing
    assert "gateway: remote-execution (accepts work from a)" in blocks["b"]
    assert "gateway: remote-execution (accepts work from b)" in blocks["c"]


def test_exec_from_routes_from_the_named_entry(applied: Path) -> None:
    default = codebolt("exec", "c,d", "--", "true", cwd=applied)
    assert default.returncode == 0, default.stderr
    assert "via a -> b -> c)" in default.stderr

    routed = codebolt("exec", "--from", "b", "c,d", "--", "true", cwd=applied)
    assert routed.returncode == 0, routed.stderr
    assert "[c] started" in routed.stderr
    assert "via b -> c)" in routed.stderr
    assert "via b -> d)" in routed.stderr

    upstream = codebolt("exec", "--from", "c", "a", "--", "true", cwd=applied)
    assert upstream.returncode == 255  # undeliverable, as the README's table says
    assert "cannot be reached from 'c'" in upstream.stderr
    unknown = codebolt("exec", "--from", "zz", "c", "--", "true", cwd=applied)
    assert unknown.returncode == 1
    assert "unknown node 'zz'" in unknown.stderr


def test_exec_errors_exit_as_documented_and_leave_the_state_alone(applied: Path) -> None:
    state_path = applied / ".codebolt" / "issue2.state.json"
    before = state_path.read_bytes()
    killed = codebolt("exec", "d", "--", "sh", "-c", "kill -TERM $$", cwd=applied)
    assert killed.returncode == 128 + 15  # killed by a signal: 128 + its number, like a shell
    failed = codebolt("exec", "c", "--", "sh", "-c", "exit 3", cwd=applied)
    assert failed.returncode == 3
    missing = codebolt("exec", "c", "--", "no-such-command-issue2", cwd=applied)
    assert missing.returncode == 127
    assert "node 'c'" in missing.stderr
    assert state_path.read_bytes() == before


def test_status_table_names_provider_endpoint_lifecycle_and_pid(applied: Path) -> None:
    state = StateFile(applied / ".codebolt", "issue2").load()
    assert state.serial >= len(state.nodes)  # saved after every node change, not once at the end
    assert len(state.lineage) == 32
    for node in state.nodes.values():
        assert node.launch_hash
        assert node.handle["pid"]
        assert node.url == f"ws://127.0.0.1:{node.port}"
    result = codebolt("status", cwd=applied, env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    for header in ("node", "provider", "state", "endpoint", "pid"):
        assert header in result.stdout
    for name, node in state.nodes.items():
        row = next(line for line in result.stdout.splitlines() if f" {name} " in line)
        assert "local" in row
        assert "RUNNING" in row
        assert str(node.url) in row
        assert str(node.handle["pid"]) in row
        assert node.admin_token not in result.stdout


def test_graph_in_every_text_format_defaults_to_topology_yaml(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    outputs = {}
    for fmt in ("ascii", "mermaid", "dot"):
        result = codebolt("graph", "--format", fmt, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs[fmt] = result.stdout
    assert outputs["ascii"].splitlines() == ["a", "`-- b", "    |-- c", "    `-- d"]
    assert outputs["mermaid"].startswith("flowchart")
    ids = dict(re.findall(r'(\w+)\["(\w)"\]', outputs["mermaid"]))
    arrows = re.findall(r"(\w+) --> (\w+)", outputs["mermaid"])
    assert sorted((ids[s], ids[t]) for s, t in arrows) == [("a", "b"), ("b", "c"), ("b", "d")]
    assert outputs["dot"].startswith('digraph "issue2"')
    assert sorted(re.findall(r'"(\w)" -> "(\w)"', outputs["dot"])) == [
        ("a", "b"),
        ("b", "c"),
        ("b", "d"),
    ]
    assert codebolt("graph", cwd=tmp_path).stdout == outputs["ascii"]  # ascii is the default
    bad = codebolt("graph", "--format", "gif", cwd=tmp_path)
    assert bad.returncode != 0
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = codebolt("graph", cwd=empty)
    assert missing.returncode == 1
    assert "topology.yaml" in missing.stderr


def _on_a_terminal(*args: str, answer: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a pseudo-terminal as stdin, the answer already typed."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return codebolt(*args, cwd=cwd, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def test_apply_and_destroy_ask_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text("name: ask\nnodes: {a: {}}\n")
    state_file = StateFile(tmp_path / ".codebolt", "ask")

    refused = _on_a_terminal("apply", answer="y", cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr  # declined: exit 1, as Terraform
    assert "Only 'yes' will be accepted" in refused.stdout
    assert "Cancelled: nothing was changed." in refused.stdout
    assert state_file.load().nodes == {}

    accepted = _on_a_terminal("apply", answer="yes", cwd=tmp_path)
    try:
        assert accepted.returncode == 0, accepted.stderr
        assert "Apply complete: 1 change(s)." in accepted.stdout
        pid = int(state_file.load().nodes["a"].handle["pid"])
        assert process_running(pid)

        kept = _on_a_terminal("destroy", answer="no", cwd=tmp_path)
        assert kept.returncode == 1
        assert "Cancelled" in kept.stdout
        assert process_running(pid)
        gone = _on_a_terminal("destroy", answer="yes", cwd=tmp_path)
        assert gone.returncode == 0, gone.stderr
        assert "Destroy complete: 1 node(s) stopped." in gone.stdout
        _wait_gone(pid)
    finally:
        codebolt("destroy", "--auto-approve", cwd=tmp_path)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_running(pid), f"process {pid} survived destroy"


def test_lock_timeout_waits_for_the_holder(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text("name: wait\nnodes: {a: {}}\n")
    state_file = StateFile(tmp_path / ".codebolt", "wait")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state_file.locked("destroy"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(10)
        at_once = codebolt("destroy", "--auto-approve", cwd=tmp_path)
        assert at_once.returncode == 1
        assert f"is locked by destroy (pid {os.getpid()} on {socket.gethostname()}" in (
            at_once.stderr
        )
        threading.Timer(1.0, release.set).start()
        start = time.monotonic()
        waited = codebolt("apply", "--auto-approve", "--lock-timeout", "30", cwd=tmp_path)
        elapsed = time.monotonic() - start
    finally:
        release.set()
        holder.join()
    try:
        assert waited.returncode == 0, waited.stderr
        assert elapsed >= 0.8  # it waited for the holder instead of failing
        assert list(state_file.load().nodes) == ["a"]
    finally:
        codebolt("destroy", "--auto-approve", cwd=tmp_path)


def test_destroy_leaves_no_process_port_or_temporary_file(tmp_path: Path) -> None:
    project, scratch = tmp_path / "project", tmp_path / "tmp"
    project.mkdir()
    scratch.mkdir()
    (project / "topology.yaml").write_text(TOPOLOGY.replace("issue2", "leave"))
    env = {"TMPDIR": str(scratch)}  # the CLI and every daemon it starts use this temp dir
    applied = codebolt("apply", "--auto-approve", cwd=project, env=env)
    assert applied.returncode == 0, applied.stderr
    state = StateFile(project / ".codebolt", "leave").load()
    pids = [int(node.handle["pid"]) for node in state.nodes.values()]
    ports = [node.port for node in state.nodes.values()]
    ran = codebolt("exec", "d", "--", "sh", "-c", "echo hi", cwd=project, env=env)
    assert ran.stdout == "hi\n"

    destroyed = codebolt("destroy", "--auto-approve", cwd=project, env=env)
    assert destroyed.returncode == 0, destroyed.stderr
    for pid in pids:
        _wait_gone(pid)
    for port in ports:
        assert port is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert sorted(os.listdir(project / ".codebolt")) == [
        ".gitignore",
        "leave.key",  # the state key (issue 16): the state still holds sealed tokens
        "leave.lock",
        "leave.state.json",
    ]
    assert StateFile(project / ".codebolt", "leave").load().nodes == {}
    assert os.listdir(scratch) == []
    assert sorted(os.listdir(project)) == [".codebolt", "topology.yaml"]
