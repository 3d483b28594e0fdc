"""Daemon lifecycle, authentication and authorization against real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from codebolt_topo.client import Exit, Failed, NodeClient
from codebolt_topo.errors import ConfigError, ExecError
from codebolt_topo.node.daemon import load_launch_config, run_daemon
from codebolt_topo.testing import Cluster, process_running
from codebolt_topo.wire.config import LaunchConfig, token_digest
from codebolt_topo.wire.handshake import SUBPROTOCOL


async def handshake_status(url: str, headers: dict[str, str]) -> int:
    try:
        async with connect(url, additional_headers=headers, subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer admin-token-for-tests", "Origin": "https://evil.example"}, 403),
        ({"Authorization": "Bearer admin-token-for-tests"}, 101),
        ({"Authorization": "Bearer edge-a-b-token"}, 401),  # a's token for b is not valid at a
    ],
)
def test_handshake_status(chain: Cluster, headers: dict[str, str], status: int) -> None:
    assert asyncio.run(handshake_status(chain.url("a"), headers)) == status


def test_client_translates_401_into_config_error(chain: Cluster) -> None:
    async def main() -> None:
        async with NodeClient.connect(chain.url("b"), "nope", name="b"):
            pass

    with pytest.raises(ConfigError, match=rf"node 'b' at {chain.url('b')} refused the token"):
        asyncio.run(main())


def test_client_unreachable_is_exec_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        async with NodeClient.connect(f"ws://127.0.0.1:{port}", "t"):
            pass

    with pytest.raises(ExecError, match="cannot reach node at") as info:
        asyncio.run(main())
    assert info.value.code == "unreachable"


def test_peer_principal_may_exec_while_gateway_active_but_not_configure(chain: Cluster) -> None:
    async def main() -> tuple[bytes, ExecError]:
        async with NodeClient.connect(chain.url("b"), chain.edge_token("a", "b")) as peer:
            out = (await (await peer.exec("b", argv=["echo", "hi"])).result())["b"].stdout
            with pytest.raises(ExecError) as info:
                await peer.configure({"generation": 99})
            return out, info.value

    out, error = asyncio.run(main())
    assert out == b"hi\n"
    assert error.code == "forbidden"


@pytest.mark.slow
def test_gateway_inactive_refuses_peers_then_plugin_enables_live(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster([("a", "b")], b={"plugins": {}})

    async def peer_exec() -> list[Failed]:
        async with NodeClient.connect(cluster.url("b"), cluster.edge_token("a", "b")) as peer:
            return (await (await peer.exec("b", argv=["true"])).result()).failures

    async def info() -> dict[str, object]:
        async with cluster.client("b") as admin:
            return await admin.info()

    failures = asyncio.run(peer_exec())
    assert [(f.node, f.hop, f.code) for f in failures] == [(None, "b", "gateway-inactive")]
    assert "'b'" in failures[0].message
    assert asyncio.run(info())["gateway"] == "inactive"

    async def via_a() -> Failed:
        async with cluster.client("a") as admin:
            return (await (await admin.exec("b", argv=["true"])).result()).failures[0]

    routed = asyncio.run(via_a())
    assert (routed.node, routed.code) == ("b", "gateway-inactive")

    asyncio.run(cluster.configure())  # enables remote-execution on b
    assert asyncio.run(peer_exec()) == []
    details = asyncio.run(info())
    assert details["gateway"] == "active"
    assert details["plugins"] == ["remote-execution"]


def test_stale_generation_is_ignored(chain: Cluster) -> None:
    async def main() -> tuple[int, object]:
        async with chain.client("d") as admin:
            generation = await admin.configure({"generation": 0, "peers": {}})
            return generation, (await admin.info())["generation"]

    assert asyncio.run(main()) == (chain.generation, chain.generation)


def test_configure_rejects_unknown_plugin(chain: Cluster) -> None:
    async def main() -> None:
        async with chain.client("d") as admin:
            await admin.configure({"generation": 10_000, "plugins": {"no-such-plugin": {}}})

    with pytest.raises(ExecError, match="unknown node plugin 'no-such-plugin'") as info:
        asyncio.run(main())
    assert info.value.code == "bad-request"


def write_config(tmp_path: Path, mode: int = 0o600, **fields: object) -> Path:
    (tmp_path / "ws").mkdir(exist_ok=True)
    values: dict[str, object] = {
        "topology": "t",
        "node": "n",
        "port": 0,
        "admin_token_digest": token_digest("x"),
        "workspace": str(tmp_path / "ws"),
        "state_dir": str(tmp_path),
    }
    values.update(fields)
    path = tmp_path / "launch.json"
    path.write_text(LaunchConfig.model_validate(values).model_dump_json())
    path.chmod(mode)
    return path


def test_config_readable_by_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mode 0644"):
        load_launch_config(write_config(tmp_path, 0o644))
    assert run_daemon(write_config(tmp_path, 0o604)) == 2


def test_non_loopback_without_admin_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without an admin token"):
        load_launch_config(write_config(tmp_path, host="0.0.0.0", admin_token_digest=""))
    assert load_launch_config(write_config(tmp_path, host="::1", admin_token_digest="")).host


def test_invalid_config_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "launch.json"
    path.write_text(json.dumps({"topology": "t"}))
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="invalid node config: node"):
        load_launch_config(path)


@pytest.mark.slow
def test_sigterm_kills_jobs_and_frees_the_port(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster([], nodes=["solo"])
    port = cluster.ports["solo"]

    async def hold_job_and_stop() -> tuple[int, list[object]]:
        async with cluster.client("solo") as admin:
            handle = await admin.exec("solo", shell="sleep 60 & echo $!; wait")
            events = aiter(handle)
            await anext(events)
            child = int((await anext(events)).data)  # type: ignore[union-attr]
            os.kill(cluster.pids["solo"], signal.SIGTERM)
            return child, [e async for e in events]

    child, rest = asyncio.run(hold_job_and_stop())
    assert cluster.procs["solo"].wait(10) == 0
    final = rest[-1]
    assert isinstance(final, Exit)
    assert final.cancelled
    assert not process_running(child)
    with socket.socket() as sock:  # a new server (SO_REUSEADDR, like ours) can listen there
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_module_entry_point_reports_ready(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codebolt_topo.node",
            "--config",
            str(path),
            "--ready-fd",
            str(write_fd),
        ],
        pass_fds=(write_fd,),
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as ready:
            report = json.loads(ready.readline())
        assert report["pid"] == proc.pid
        assert report["port"] > 0
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert time.monotonic() - started < 5
        assert b"listening on 127.0.0.1" in err
        assert token_digest("x") not in err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
