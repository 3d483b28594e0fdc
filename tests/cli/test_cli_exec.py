"""``codebolt exec``/``status`` against a real applied topology, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import applied_through_the_cli, codebolt

from codebolt_topo.engine.statefile import StateFile, atomic_write

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: cli
nodes:
  a: {}
  b: {}
  c: {}
  x: {plugins: {remote-execution: false}}
edges: [a -> b -> c, x -> c]
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with applied_through_the_cli(tmp_path_factory, "cli", TOPOLOGY) as directory:
        yield directory


def test_output_streams_split_and_exit_code_propagates(applied: Path) -> None:
    result = codebolt("exec", "c", "--", "sh", "-c", "echo out; echo err >&2; exit 5", cwd=applied)
    assert result.returncode == 5
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr


def test_node_without_gateway_refuses_remote_execution(applied: Path) -> None:
    """x switched remote-execution off: validate refuses an edge into it (tests/plan), so no
    route leads there from a and exec says so; x's daemon itself still refuses a peer's work
    (gateway-inactive), shown through the Python API with a peer token it was told to accept."""
    import asyncio

    from codebolt_topo.client import NodeClient
    from codebolt_topo.wire.config import RuntimeConfig, token_digest

    plan = codebolt("plan", "--json", cwd=applied)
    assert json.loads(plan.stdout)["nodes"]["x"]["gateway"] == "inactive"
    result = codebolt("exec", "--from", "a", "x", "--", "true", cwd=applied)
    assert result.returncode == 255
    assert "x cannot be reached from 'a'" in result.stderr
    # x is a root: entered there, its admin runs work on it (the gateway is for peers only)
    assert codebolt("exec", "x", "--", "true", cwd=applied).returncode == 0

    x = StateFile(applied / ".codebolt", "cli").load().nodes["x"]
    assert x.url is not None
    token = "a-peer-token"

    async def as_a_peer() -> list[tuple[str | None, str, str]]:
        async with NodeClient.connect(x.url, x.admin_token, name="x") as admin:  # type: ignore[arg-type]
            generation = int((await admin.info())["generation"])
            await admin.configure(
                RuntimeConfig(generation=generation + 1, accept={"a": token_digest(token)})
            )
        async with NodeClient.connect(x.url, token, name="x") as peer:  # type: ignore[arg-type]
            failures = (await (await peer.exec("x", argv=["true"])).result()).failures
            return [(f.hop, f.code, f.message) for f in failures]

    [(hop, code, message)] = asyncio.run(as_a_peer())
    assert (hop, code) == ("x", "gateway-inactive")
    assert "'x'" in message


def test_command_not_found_names_the_node(applied: Path) -> None:
    result = codebolt("exec", "c", "--", "definitely-not-a-command", cwd=applied)
    assert result.returncode == 127
    assert "node 'c': command not found: 'definitely-not-a-command'" in result.stderr


def test_fan_out_prefixes_lines_with_the_node(applied: Path) -> None:
    result = codebolt("exec", "b,c", "--", "sh", "-c", "echo hi from $CODEBOLT_NODE", cwd=applied)
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == ["[b] hi from b", "[c] hi from c"]


def test_all_runs_on_every_node_reachable_from_the_entry_the_entry_included(
    applied: Path,
) -> None:
    result = codebolt(
        "exec", "--from", "b", "--all", "--", "sh", "-c", "echo at $CODEBOLT_NODE", cwd=applied
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["[b] at b", "[c] at c"]


def test_timeout_kills_and_exits_124(applied: Path) -> None:
    result = codebolt("exec", "--timeout", "0.5", "c", "--", "sleep", "30", cwd=applied)
    assert result.returncode == 124
    assert "timed out" in result.stderr


def test_status_lists_running_nodes(applied: Path) -> None:
    result = codebolt("status", "--json", cwd=applied)
    document = json.loads(result.stdout)
    assert {n["name"]: n["lifecycle"] for n in document["nodes"]} == {
        "a": "RUNNING",
        "b": "RUNNING",
        "c": "RUNNING",
        "x": "RUNNING",
    }
    assert all(n["alive"] for n in document["nodes"])
    assert "token" not in result.stdout


def test_wrong_token_is_refused_before_upgrade(applied: Path) -> None:
    state_file = StateFile(applied / ".codebolt", "cli")
    original = state_file.path.read_bytes()
    state = state_file.load()
    state.nodes["a"].admin_token = "not-the-token"
    atomic_write(state_file.path, state.model_dump_json().encode())
    try:
        result = codebolt("exec", "c", "--", "true", cwd=applied)
    finally:
        atomic_write(state_file.path, original)
    assert result.returncode == 1
    assert "node 'a'" in result.stderr
    assert "401" in result.stderr
    assert "not-the-token" not in result.stderr


def test_exec_before_apply_says_so(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    result = codebolt("exec", "c", "--", "true", cwd=tmp_path)
    assert result.returncode == 1
    assert "is not applied" in result.stderr


def test_one_nodes_credentials_in_a_private_file(applied: Path) -> None:
    """``state credentials`` hands out one node's token only, in a 0600 file that works with
    the Python API; the file is never silently replaced, and a loosened one is refused."""
    import asyncio

    from codebolt_topo.client import NodeClient
    from codebolt_topo.credentials import read_credentials
    from codebolt_topo.errors import ConfigError

    target = applied / "b.credentials.json"
    target.unlink(missing_ok=True)
    result = codebolt("state", "credentials", "b", cwd=applied)
    assert result.returncode == 0, result.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    creds = read_credentials(target)
    state = json.loads(codebolt("state", "pull", cwd=applied).stdout)
    assert (creds.node, creds.token) == ("b", state["nodes"]["b"]["admin_token"])
    assert creds.token not in result.stdout + result.stderr + repr(creds)
    assert state["nodes"]["a"]["admin_token"] not in target.read_text()

    async def as_b() -> bytes:
        async with NodeClient.connect(creds.url, creds.token, name=creds.node) as client:
            return (await (await client.exec("c", argv=["echo", "via b"])).result())["c"].stdout

    assert asyncio.run(as_b()) == b"via b\n"

    again = codebolt("state", "credentials", "b", cwd=applied)
    assert again.returncode == 1
    assert "exists: pass --force" in again.stderr
    unknown = codebolt("state", "credentials", "nope", cwd=applied)
    assert "no node 'nope' in the state of 'cli' (a, b, c, x)" in unknown.stderr
    target.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_credentials(target)
