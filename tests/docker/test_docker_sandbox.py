"""A sandbox node, checked by its container settings and by what code inside can (not) do."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import applied, client, state_of

from codebolt_topo.client import ExecResult, NodeClient

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SANDBOX = """name: sbx
nodes:
  a: {provider: docker}
  s: {provider: docker, sandbox: true, resources: {memory: 128m, pids: 64}}
edges: [a -> s]
"""


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on every host interface: what sandboxed code must not reach."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def _run(path: Path, target: str, shell: str) -> ExecResult:
    entry = state_of(path).nodes["a"]

    async def go() -> ExecResult:
        async with NodeClient.connect(entry.url, entry.admin_token) as c:  # type: ignore[arg-type]
            return await (await c.exec(target, shell=shell, timeout=60)).result()

    return asyncio.run(go())


CONNECT = """python3 - <<'EOF'
import socket
for host in {hosts!r}:
    try:
        socket.create_connection((host, {port}), timeout=2).close()
        print(host, "connected")
    except OSError as error:
        print(host, "failed", type(error).__name__)
EOF"""

FIND_DAEMON = """for p in /proc/[0-9]*; do
  case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in python*container_main*) pid=${p#/proc/};; esac
done; """

FORK_BOMB = """python3 - <<'EOF'
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        children += 1
except OSError as error:
    print("limited after", children, error.strerror)
EOF"""


def test_sandbox_is_locked_down(tmp_path: Path, host_server: int) -> None:
    path = tmp_path / "sbx.yaml"
    path.write_text(SANDBOX)
    volumes_before = {volume.name for volume in client().volumes.list()}
    with applied(path):
        state = state_of(path)
        attrs: dict[str, Any] = client().api.inspect_container(state.nodes["s"].handle["id"])
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True
        assert host["Privileged"] is False
        assert host["PidsLimit"] == 64
        assert host["Memory"] == 128 * 1024 * 1024
        assert host["NetworkMode"].endswith("-sandbox")
        assert host["PidMode"] in ("", "private")
        assert attrs["Config"]["User"] == "10001:10001"
        assert not any("docker.sock" in m.get("Source", "") for m in attrs["Mounts"])
        networks = client().networks.list(names=[host["NetworkMode"]])
        assert networks[0].attrs["Internal"] is True

        files = _run(
            path,
            "s",
            "touch /workspace/ok && echo workspace-ok; touch /etc/x; touch /opt/codebolt/x; id -u",
        )
        assert b"workspace-ok" in files["s"].stdout
        assert files["s"].stderr.count(b"Read-only file system") == 2
        assert files["s"].stdout.endswith(b"10001\n")

        privileged = _run(
            path, "s", "mount -t tmpfs none /tmp; echo mount=$?; unshare -r true; echo unshare=$?"
        )
        assert b"mount=0" not in privileged["s"].stdout
        assert b"unshare=0" not in privileged["s"].stdout

        # No route out of the host, and no way to the host itself: its services listening on
        # every interface sit behind the internal bridge's gateway, which the sandbox's own
        # egress firewall drops. The parent container on that network still answers.
        gateway = networks[0].attrs["IPAM"]["Config"][0]["Gateway"]
        out = _run(path, "s", CONNECT.format(hosts=["1.1.1.1", "8.8.8.8"], port=53))["s"]
        assert out.stdout.decode().count("failed") == 2, out.stdout
        to_host = _run(path, "s", CONNECT.format(hosts=[gateway], port=host_server))["s"]
        assert b"failed" in to_host.stdout, to_host.stdout
        to_parent = _run(path, "s", CONNECT.format(hosts=["a"], port=3100))["s"]
        assert b"a connected" in to_parent.stdout, to_parent.stdout
        control = _run(path, "a", CONNECT.format(hosts=["host.docker.internal"], port=host_server))[
            "a"
        ].stdout
        assert b"connected" in control, "control: a non-sandbox node reaches the host"

        # The daemon is the process whose command line starts with python ... container_main.
        probe = "cat /proc/$pid/environ >/dev/null 2>&1 && echo environ-readable; "
        probe += "head -c1 /proc/$pid/mem >/dev/null 2>&1 && echo mem-readable; echo daemon=$pid"
        secrets = _run(path, "s", FIND_DAEMON + probe)["s"].stdout
        assert secrets.startswith(b"daemon="), secrets
        assert secrets != b"daemon=\n", "daemon process not found"

        bomb = _run(path, "s", FORK_BOMB)["s"]
        assert b"limited after" in bomb.stdout, bomb.stderr
        assert int(bomb.stdout.split()[2]) < 64

        hog = _run(path, "s", "python3 -c 'b = bytearray(512 * 2**20); print(len(b))'")["s"]
        assert hog.exit is not None
        # The kernel's OOM killer sends SIGKILL; through ``sh -c`` that reads as 137.
        assert hog.exit.signal == "SIGKILL" or hog.exit.code == 137, hog
        assert _run(path, "s", "echo alive")["s"].stdout == b"alive\n"
    # Nothing the apply made outlives the destroy: the egress firewall's helper container
    # (the node image, which declares VOLUME /workspace) used to leave an anonymous volume.
    assert {volume.name for volume in client().volumes.list()} - volumes_before == set()


def test_a_fork_bomb_dies_with_its_job(tmp_path: Path) -> None:
    """The bomb runs under ``timeout``, in a process group of its own: killing the job's group
    used to leave it holding every pid of the sandbox (issue 12). The job's whole tree dies."""
    path = tmp_path / "sbx.yaml"
    path.write_text(SANDBOX)
    entry_of = lambda: state_of(path).nodes["a"]  # noqa: E731

    async def bomb_then_count() -> tuple[ExecResult, ExecResult, ExecResult]:
        entry = entry_of()
        async with NodeClient.connect(entry.url, entry.admin_token) as c:  # type: ignore[arg-type]
            bomb = await (
                await c.exec("s", shell="timeout 30 bash -c ':(){ :|:& };:'; echo", timeout=3)
            ).result()
            count = "ls -d /proc/[0-9]* | wc -l"
            after = await (await c.exec("s", shell=count, timeout=30)).result()
            await asyncio.sleep(1.0)
            later = await (await c.exec("s", shell=count, timeout=30)).result()
        return bomb, after, later

    with applied(path):
        bomb, after, later = asyncio.run(bomb_then_count())
        # The bomb's first shell returns at once, so the job ends when its pipes have lingered
        # (or at its timeout): either way, only after the bomb filled the pids limit.
        assert bomb["s"].exit is not None, bomb
        assert b"fork: retry: Resource temporarily unavailable" in bomb["s"].stderr, bomb
        # init, the daemon, and the counting shell with its ls and wc: nothing of the bomb.
        assert int(after["s"].stdout) <= 6, after["s"].stdout
        assert int(later["s"].stdout) <= 6, later["s"].stdout
        assert _run(path, "s", "echo alive")["s"].stdout == b"alive\n"
