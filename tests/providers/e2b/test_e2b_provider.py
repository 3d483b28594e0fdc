"""e2b nodes through the real ``e2b`` SDK, against the local stand-in in ``tests/e2b_standin``.

The stand-in is a real HTTP server (uvicorn) speaking the control-plane REST API and envd's
connect-RPC (the SDK's own generated server application), plus a sandbox proxy; its sandboxes
are directories with real local processes, so a real node daemon runs "in" each one. What it
cannot show: e2b's TLS proxy, real templates' Pythons, network isolation between sandboxes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebolt_topo.client import Exit, NodeClient, Output
from codebolt_topo.engine.operations import (
    apply_topology,
    destroy_topology,
    plan_topology,
    state_file_for,
)
from codebolt_topo.errors import TopoError
from codebolt_topo.model.nodes import launch_settings, node_model
from codebolt_topo.plan.diff import ActionKind
from codebolt_topo.providers import processes
from codebolt_topo.providers.e2b.relay_main import rewrite_head
from codebolt_topo.providers.registry import describe_providers
from codebolt_topo.testing import process_running

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from e2b_standin import StandIn

NodeSpec = node_model()  # with the installed providers' settings

KEY = "e2b_standin_" + "k3y" * 8
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    deps = sysconfig.get_paths()["purelib"]
    templates = {
        # A template with codebolt-topo installed (install: template).
        "codebolt": {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"},
        # A template without codebolt-topo: install: template cannot start a node there.
        "bare": {"PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"},
        # A template with Python and the dependencies but not codebolt-topo (install: wheel).
        "python-deps": {
            "PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": deps,
        },
    }
    with StandIn(KEY, templates).running_context() as server:
        yield server


@pytest.fixture
def e2b_env(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    for name, value in standin.environ().items():
        monkeypatch.setenv(name, value)
    return standin


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _topology(tmp_path: Path, name: str, nodes: str, edges: str = "[]") -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(f"name: {name}\nnodes:\n{nodes}edges: {edges}\n")
    return path


def _e2b_node(name: str, template: str = "codebolt", install: str = "template") -> str:
    return (
        f"  {name}: {{provider: e2b, port: {_free_port()}, "
        f"e2b: {{template: {template}, install: {install}, timeout: 60}}}}\n"
    )


def _relay_pids(path: Path, name: str) -> list[int]:
    state = state_file_for(path, name).load()
    return [int(n.handle["pid"]) for n in state.nodes.values() if n.provider == "e2b"]


def _tree_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


# -- fast: model, registry, relay framing, errors ---------------------------------------------


def test_e2b_is_listed_as_a_cloud_provider() -> None:
    row = next(row for row in describe_providers() if row.name == "e2b")
    assert row.category == "cloud"
    assert {"python", "sandbox", "e2b"} <= set(row.capabilities)


def test_e2b_settings_belong_to_e2b_nodes() -> None:
    with pytest.raises(ValueError, match="only provider: e2b uses e2b settings"):
        NodeSpec.model_validate({"e2b": {"template": "base"}})
    with pytest.raises(ValueError, match="only container providers"):
        NodeSpec.model_validate({"provider": "e2b", "image": "x"})
    spec = NodeSpec.model_validate({"provider": "e2b", "e2b": {"template": "t", "timeout": 90}})
    assert launch_settings(spec)["e2b"]["template"] == "t"  # editing it replaces the node


def test_relay_rewrites_only_the_routing_headers() -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:5\r\nAuthorization: Bearer t\r\n"
        b"E2b-Sandbox-Id: evil\r\n\r\n"
    )
    out = rewrite_head(head, [("Host", "3100-x.e2b.app"), ("E2b-Sandbox-Id", "x")])
    assert out == (
        b"GET / HTTP/1.1\r\nAuthorization: Bearer t\r\nHost: 3100-x.e2b.app\r\n"
        b"E2b-Sandbox-Id: x\r\n\r\n"
    )


def test_missing_api_key_is_a_clear_error(
    e2b_env: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2B_API_KEY")
    path = _topology(tmp_path, "nokey", _e2b_node("b"))
    with pytest.raises(TopoError, match="E2B_API_KEY is not set"):
        apply_topology(path)
    assert e2b_env.running() == []


# -- slow: real sandboxes with real daemons ---------------------------------------------------


async def _stream(url: str, token: str, target: str) -> list[tuple[float, object]]:
    events: list[tuple[float, object]] = []
    script = "for i in 1 2 3; do echo tick $i from $CODEBOLT_NODE; sleep 0.3; done"
    async with NodeClient.connect(url, token) as client:
        handle = await client.exec(target, argv=["sh", "-c", script])
        async for event in handle:
            events.append((time.monotonic(), event))
    return events


@pytest.mark.slow
def test_local_to_e2b_to_e2b_exec_streams_and_destroy_kills(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    nodes = "  a: {}\n" + _e2b_node("b") + _e2b_node("c")
    path = _topology(tmp_path, "lab", nodes, "[a -> b -> c]")
    messages: list[str] = []
    apply_topology(path, progress=messages.append)
    state = state_file_for(path, "lab").load()
    relays = _relay_pids(path, "lab")
    assert len(e2b_env.running()) == 2
    assert all(n.url and n.url.startswith("ws://127.0.0.1:") for n in state.nodes.values())

    entry = state.nodes["a"]
    events = asyncio.run(_stream(str(entry.url), entry.admin_token, "c"))
    lines = b"".join(e.data for _, e in events if isinstance(e, Output)).decode().splitlines()
    assert lines == [f"tick {i} from c" for i in (1, 2, 3)]
    first = next(t for t, e in events if isinstance(e, Output))
    end = next(t for t, e in events if isinstance(e, Exit))
    assert end - first > 0.4, "output arrived all at once, not streamed"
    # b -> c went through the sandbox proxy by name, not through this machine's loopback
    c_id = state.nodes["c"].handle["sandbox_id"]
    assert (c_id, state.nodes["c"].handle["port"]) in e2b_env.proxy.routed
    # the relays renew each sandbox's timeout
    renewed = {p for m, p in e2b_env.control.calls if m == "POST" and p.endswith("/timeout")}
    assert {
        f"/sandboxes/{n.handle['sandbox_id']}/timeout"
        for n in state.nodes.values()
        if n.provider == "e2b"
    } <= renewed

    runtime = state_file_for(path, "lab").runtime_dir
    written = _tree_text(runtime.parent) + "\n".join(messages)
    assert KEY not in written, "the API key leaked into the state, a config or a log"
    assert not any(KEY in value for s in e2b_env.running() for value in s.envs.values())

    # a sandbox that ends out of band (its timeout, the dashboard) is drift, with the reason
    e2b_env.sandboxes.kill(c_id)
    action = next(a for a in plan_topology(path).actions if a.node == "c")
    assert action.kind is ActionKind.REPLACE
    assert action.messages == (f"drift: sandbox {c_id} is gone",)

    destroy_topology(path)
    assert e2b_env.running() == []
    assert not any(process_running(pid) for pid in relays)
    assert not runtime.exists()


def test_listing_providers_does_not_import_the_sdk() -> None:
    code = (
        "import sys; from codebolt_topo.providers.registry import describe_providers; "
        "describe_providers(); assert 'e2b' not in sys.modules, 'e2b imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_killed_apply_leaves_a_sandbox_the_next_run_removes(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    path = _topology(tmp_path, "crash", _e2b_node("b"))
    before = {s.id for s in e2b_env.running()}
    cli = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", "apply", "--auto-approve", str(path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not {s.id for s in e2b_env.running()} - before and time.monotonic() < deadline:
        time.sleep(0.02)
    cli.send_signal(signal.SIGKILL)  # the sandbox exists; its handle is not saved yet
    cli.wait()
    orphans = {s.id for s in e2b_env.running()} - before
    assert len(orphans) == 1

    messages: list[str] = []
    apply_topology(path, progress=messages.append)
    assert any("removing an orphan" in m for m in messages)
    alive = {s.id for s in e2b_env.running()} - before
    assert len(alive) == 1
    assert alive.isdisjoint(orphans)
    destroy_topology(path)
    assert {s.id for s in e2b_env.running()} - before == set()


@pytest.mark.slow
def test_install_from_the_wheel_uploaded_through_the_files_api(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    # The wheel is built here once per source state (cached under ~/.cache/codebolt-topo).
    path = _topology(
        tmp_path, "wheel", "  a: {}\n" + _e2b_node("b", "python-deps", "wheel"), "[a -> b]"
    )
    apply_topology(path)
    try:
        state = state_file_for(path, "wheel").load()
        sandbox = e2b_env.sandboxes.by_id[state.nodes["b"].handle["sandbox_id"]]
        entry = state.nodes["a"]

        daemon = next(p for p in sandbox.processes.values() if p.exit_code is None)
        cmdline = Path(f"/proc/{daemon.pid}/cmdline").read_bytes()
        assert b".codebolt/venv/bin/python" in cmdline
        installed = sandbox.root / ".codebolt" / "venv" / "lib"
        assert list(installed.glob("python3*/site-packages/codebolt_topo/node"))
        last = asyncio.run(_stream(str(entry.url), entry.admin_token, "b"))[-1][1]
        assert isinstance(last, Exit)
        assert last.code == 0
    finally:
        destroy_topology(path)
    assert e2b_env.running() == []


@pytest.mark.slow
def test_an_e2b_node_sends_work_here_over_the_link_the_node_here_dials(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    """Issue 14: a sandbox cannot connect to this machine, so the edge b -> a (dial: auto) is
    opened by a, which dials b through its relay; work sent by b runs on a."""
    path = _topology(tmp_path, "outward", "  a: {}\n" + _e2b_node("b"), "[b -> a]")
    try:
        apply_topology(path)
        b = state_file_for(path, "outward").load().nodes["b"]
        events = asyncio.run(_stream(str(b.url), b.admin_token, "a"))
    finally:
        destroy_topology(path)
    stdout = b"".join(e.data for _, e in events if isinstance(e, Output))
    assert stdout == b"".join(b"tick %d from a\n" % i for i in (1, 2, 3))
    assert [e.code for _, e in events if isinstance(e, Exit)] == [0]
    assert e2b_env.running() == []


@pytest.mark.slow
def test_an_edge_from_a_sandbox_dialed_by_the_sandbox_fails_the_apply(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    """dial: sender asks the sandbox to connect to this machine, which it cannot."""
    edges = "[{from: b, to: a, dial: sender}]"
    path = _topology(tmp_path, "outward", "  a: {}\n" + _e2b_node("b"), edges)
    try:
        with pytest.raises(TopoError) as caught:
            apply_topology(path)
        assert "edge b -> a" in str(caught.value)
    finally:
        destroy_topology(path)
    assert e2b_env.running() == []


@pytest.mark.slow
def test_a_daemon_that_cannot_start_fails_with_its_log(e2b_env: StandIn, tmp_path: Path) -> None:
    path = _topology(tmp_path, "bare", _e2b_node("b", "bare", "template"))
    try:
        with pytest.raises(TopoError, match=r"(?s)daemon exited during start.*codebolt_topo"):
            apply_topology(path)
        assert e2b_env.running() == [], "the failed node's sandbox was left running"
    finally:
        destroy_topology(path)


@pytest.mark.slow
def test_the_relay_keeps_its_sandbox_alive_and_ends_with_it(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    """A 3 s sandbox outlives 3 s while its relay renews it, and the relay ends with it."""
    sandbox = e2b_env.sandboxes.create("codebolt", 3, {}, {})
    config = tmp_path / "relay.json"
    config.write_text(
        json.dumps(
            {
                "sandbox_id": sandbox.id,
                "domain": "e2b.standin",
                "port": 1,
                "timeout": 3,
                "sandbox_url": e2b_env.proxy_url,
            }
        )
    )

    relay = asyncio.run(
        processes.spawn_detached(
            [
                sys.executable,
                "-m",
                "codebolt_topo.providers.e2b.relay_main",
                "--config",
                str(config),
                "--ready-fd",
                str(processes.READY_FD),
            ],
            dict(os.environ),
            tmp_path / "relay.log",
            what="relay",
            timeout=20,
        )
    )
    try:
        time.sleep(4.5)
        assert e2b_env.sandboxes.running(sandbox.id) is not None, "not kept alive"
        e2b_env.sandboxes.kill(sandbox.id)
        deadline = time.monotonic() + 5
        while processes.is_ours(relay.handle) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes.is_ours(relay.handle), "the relay outlived its sandbox"
    finally:
        asyncio.run(processes.stop_group(relay.handle, grace=1))


def _running_in(sandbox: object, fragment: bytes) -> list[int]:
    """Pids of the sandbox's live processes whose command line holds ``fragment``."""
    found = []
    for pid, process in getattr(sandbox, "processes", {}).items():
        if process.exit_code is None:
            try:
                if fragment in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
    return found


TAIL = b"tail\x00-n\x00+1\x00-F\x00"  # a command line's arguments are NUL-separated


@pytest.mark.slow
def test_an_e2b_node_reports_its_steps_and_logs_come_from_its_sandbox(
    e2b_env: StandIn, tmp_path: Path
) -> None:
    """Issue 17, items 1-2: apply says what an e2b node is doing (the sandbox's creation, the
    daemon, the relay); ``codebolt logs`` reads node.log in the sandbox through the SDK's
    commands API, and follows it with tail -F, killed when logs -f stops."""
    from log_follow import Follower, logs

    path = _topology(tmp_path, "logged", "  a: {}\n" + _e2b_node("b"), "[a -> b]")
    messages: list[str] = []
    apply_topology(path, progress=messages.append)
    try:
        steps = [m[3:] for m in messages if m.startswith("b: ")]
        assert steps[:4] == [
            "starting (e2b)",
            "creating a sandbox (template codebolt)",
            "starting the daemon",
            "starting the relay",
        ]
        everything = logs("b", cwd=tmp_path)
        assert everything.returncode == 0, everything.stderr
        assert "node b of logged listening on 0.0.0.0:" in everything.stdout
        assert (
            logs("b", "-n", "1", cwd=tmp_path).stdout.splitlines()
            == (everything.stdout.splitlines()[-1:])
        )

        sandbox = e2b_env.sandboxes.by_id[
            state_file_for(path, "logged").load().nodes["b"].handle["sandbox_id"]
        ]
        follower = Follower("b", cwd=tmp_path)
        try:
            follower.wait_for(lambda line: "listening on" in line)
            assert _running_in(sandbox, TAIL)
            with (sandbox.root / ".codebolt" / "node.log").open("a") as log:
                log.write("2026-01-01 00:00:00,000 INFO written after logs -f started\n")
            follower.wait_for(lambda line: line.endswith("written after logs -f started"))
        finally:
            code, stderr = follower.stop()
        assert code == 0, stderr
        deadline = time.monotonic() + 10
        while _running_in(sandbox, TAIL) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running_in(sandbox, TAIL) == [], "the sandbox's tail outlived logs -f"
    finally:
        destroy_topology(path)
