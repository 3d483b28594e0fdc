"""cloud-vm against real OpenSSH servers on loopback: bootstrap, tunnel, exec, heal, destroy.

The "remote machine" is this one: sshd (Debian's openssh-server) runs as the current user with
a throwaway host key, an authorized key made for the session, a config allowing nothing else,
on a free high port. The node's ``remote_dir`` is under tmp. Everything goes through the real
asyncssh code path: SFTP upload, venv install, detached daemon, tunnel process.

Without sshd these tests skip, unless ``CODEBOLT_REQUIRE_SSH=1`` (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sshd_keys import make_ssh_keys

from codebolt_topo.client import NodeClient, Output
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.errors import ProviderError
from codebolt_topo.model.nodes import node_model
from codebolt_topo.model.state import NodeState
from codebolt_topo.providers.base import NodeLaunch, ProviderContext
from codebolt_topo.providers.cloud_vm.provider import CloudVmProvider
from codebolt_topo.providers.cloud_vm.wheelhouse import Wheelhouse, wheelhouse
from codebolt_topo.testing import process_running
from codebolt_topo.wire.config import LaunchConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "engine"))
from local_topology import Applied, applied_topology, state_file_for

NodeSpec = node_model()  # with the installed providers' settings

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = [pytest.mark.ssh, pytest.mark.slow, pytest.mark.timeout(240)]

if not (Path(SSHD).exists() and shutil.which("ssh-keygen")):
    reason = f"OpenSSH server not installed ({SSHD}; apt-get install openssh-server)"
    if os.environ.get("CODEBOLT_REQUIRE_SSH") == "1":
        pytest.fail(reason + " but CODEBOLT_REQUIRE_SSH=1", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@dataclass
class Servers:
    """Two sshd servers (``jump`` then ``target``) sharing one host key and one user key."""

    root: Path
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]]
    host_key: str

    def settings(self, server: str = "target", **extra: Any) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.ports[server],
            "user": _user(),
            "identity_file": str(self.root / "id"),
            "host_key": self.host_key,
            **extra,
        }

    def drop_connections(self, server: str) -> None:
        """SIGKILL every per-connection child of ``server``'s sshd (the listener stays)."""
        parent = self.procs[server].pid
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                        os.kill(int(entry.name), signal.SIGKILL)


def _user() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("sshd")
    os.chmod(root, 0o700)
    make_ssh_keys(root)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {"jump": _free_port(), "target": _free_port()}
    try:
        for name, port in ports.items():
            config = root / f"sshd-{name}.conf"
            config.write_text(
                f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
                f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                f"PidFile {root / f'sshd-{name}.pid'}\nPermitRootLogin prohibit-password\n"
                "AllowTcpForwarding yes\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
            )
            procs[name] = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL
            )
        for port in ports.values():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
        host_key = " ".join((root / "host.pub").read_text().split()[:2])
        yield Servers(root, ports, procs, host_key)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the module's tests: the first bootstraps the host cold, the next warm."""
    return tmp_path_factory.mktemp("remote")


@pytest.fixture(scope="session")
def wheels() -> Wheelhouse:
    """Built once per session (and cached across sessions by source hash)."""
    return wheelhouse()


def _topology(
    path: Path, ssh: dict[str, Any], remote_dir: Path, edge: str = "laptop -> vm"
) -> Path:
    lines = [
        f"{key}: {value!r}" if isinstance(value, str) else f"{key}: {value}"
        for key, value in ssh.items()
    ]
    ssh_block = "\n".join("      " + line for line in lines)
    path.write_text(
        "name: cloudy\nnodes:\n  laptop: {}\n  vm:\n    provider: cloud-vm\n    ssh:\n"
        f"{ssh_block}\n      remote_dir: {str(remote_dir)!r}\n"
        f"      python: {sys._base_executable!r}\n"
        f"edges:\n  - {edge}\n"
    )
    return path


async def _stream(node: NodeState, target: str, shell: str) -> list[Output]:
    async with NodeClient.admin(node) as client:  # the CA pinned when the node serves TLS
        return [
            event
            async for event in await client.exec(target, shell=shell)
            if isinstance(event, Output)
        ]


def _latency(applied: Applied, target: str, rounds: int = 15) -> float:
    node = applied.state.nodes["laptop"]
    assert node.url is not None

    async def go() -> float:
        async with NodeClient.connect(node.url, node.admin_token) as client:  # type: ignore[arg-type]
            times = []
            for _ in range(rounds + 2):
                began = time.perf_counter()
                await (await client.exec(target, argv=["true"])).result()
                times.append(time.perf_counter() - began)
            return statistics.median(times[2:])

    return asyncio.run(go())


def _remote_pid(applied: Applied) -> int:
    return int(applied.state.nodes["vm"].handle["remote"]["pid"])


def test_local_to_cloud_vm(
    servers: Servers, wheels: Wheelhouse, remote_dir: Path, tmp_path: Path
) -> None:
    path = _topology(tmp_path / "topology.yaml", servers.settings(), remote_dir)
    began = time.perf_counter()
    with applied_topology(path) as applied:
        took = time.perf_counter() - began
        print(f"\napply local -> cloud-vm, cold bootstrap: {took:.2f} s")
        vm = applied.state.nodes["vm"]
        first_pid = _remote_pid(applied)
        tunnel_pid = int(vm.handle["pid"])
        assert vm.host == "127.0.0.1"
        assert process_running(first_pid)
        launch = Path(vm.handle["remote"]["dir"]) / "launch.json"
        assert launch.stat().st_mode & 0o777 == 0o600
        assert vm.admin_token not in launch.read_text()

        laptop = applied.state.nodes["laptop"]
        chunks = asyncio.run(
            _stream(
                laptop,
                "vm",
                "for i in 1 2 3; do echo line$i; sleep 0.2; done; pwd",
            )
        )
        assert len(chunks) >= 3, "output arrives as it is produced, not at the end"
        text = b"".join(chunk.data for chunk in chunks).decode()
        assert text.startswith("line1\nline2\nline3\n")
        assert text.strip().endswith("/workspace")
        assert str(remote_dir) in text

        local_ms, tunnel_ms = _latency(applied, "laptop") * 1e3, _latency(applied, "vm") * 1e3
        print(f"exec `true` median: laptop {local_ms:.1f} ms, laptop -> vm {tunnel_ms:.1f} ms")

        found = asyncio.run(_discover(path))
        assert [d.node for d in found] == ["vm"]
        assert found[0].same_as(vm.handle)

        servers.drop_connections("target")  # the tunnel's SSH connection dies; it reconnects
        assert applied.run("vm", ["echo", "after drop"])["vm"].stdout == b"after drop\n"
        assert process_running(tunnel_pid)

        os.kill(first_pid, signal.SIGKILL)
        began = time.perf_counter()
        report = asyncio.run(Reconciler(path, backoff_base=0.0).pass_once())
        print(f"reconcile replaced the killed cloud-vm node in {time.perf_counter() - began:.2f} s")
        assert "vm" in {action.node for action in report.applied}, report
        assert _remote_pid(applied) != first_pid
        assert not process_running(tunnel_pid), "the replaced node's tunnel is stopped"
        assert applied.run("vm", ["echo", "healed"])["vm"].stdout == b"healed\n"
        pids = [_remote_pid(applied), int(applied.state.nodes["vm"].handle["pid"])]
    assert not any(process_running(pid) for pid in pids)
    assert list((remote_dir / "nodes").iterdir()) == [], "remote node directories removed"


def test_cloud_vm_sends_work_here_over_the_link_the_node_here_dials(
    servers: Servers, wheels: Wheelhouse, remote_dir: Path, tmp_path: Path
) -> None:
    """Issue 14: the host cannot reach this machine (tunnels run from here to it), so the edge
    vm -> laptop (dial: auto) is opened by laptop, which dials vm through its tunnel."""
    path = _topology(tmp_path / "topology.yaml", servers.settings(), remote_dir, "vm -> laptop")
    with applied_topology(path) as applied:
        vm = applied.state.nodes["vm"]
        chunks = asyncio.run(_stream(vm, "laptop", "echo $CODEBOLT_NODE"))
        assert b"".join(chunk.data for chunk in chunks) == b"laptop\n"


async def _discover(path: Path) -> list[Any]:
    state = state_file_for(path, "cloudy").load()
    context = ProviderContext(
        topology="cloudy",
        lineage=state.lineage,
        runtime_dir=path.parent / ".codebolt" / "cloudy",
        base_dir=path.parent,
    )
    provider = CloudVmProvider(context)
    try:
        return await provider.discover()
    finally:
        await provider.close()


def test_jump_host(servers: Servers, wheels: Wheelhouse, remote_dir: Path, tmp_path: Path) -> None:
    ssh = servers.settings(jump=[servers.settings("jump")])
    path = _topology(tmp_path / "topology.yaml", ssh, remote_dir)
    began = time.perf_counter()
    with applied_topology(path) as applied:
        print(f"\napply local -> jump -> cloud-vm, warm: {time.perf_counter() - began:.2f} s")
        assert applied.run("vm", ["echo", "via jump"])["vm"].stdout == b"via jump\n"


def test_wrong_host_key_is_refused(servers: Servers, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    spec = NodeSpec.model_validate(
        {"provider": "cloud-vm", "ssh": servers.settings(host_key=wrong)}
    )
    provider = CloudVmProvider(ProviderContext("t", "l", tmp_path / "rt", tmp_path))
    config = LaunchConfig(
        topology="t",
        node="n",
        admin_token_digest="0" * 64,
        workspace=str(tmp_path),
        state_dir=str(tmp_path),
    )

    async def go() -> None:
        try:
            await provider.create(NodeLaunch(name="n", spec=spec, config=config))
        finally:
            await provider.close()

    with pytest.raises(ProviderError, match=r"[Hh]ost key"):
        asyncio.run(go())


def _running_commands(fragment: bytes) -> list[int]:
    """Pids of processes whose command line holds ``fragment`` (the "host" is this machine)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if fragment in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def test_apply_reports_each_long_step_and_logs_come_from_the_host(
    servers: Servers,
    wheels: Wheelhouse,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Issue 17, items 1-2: a cold apply said only 'vm: starting (cloud-vm)' through the wheel
    build, the upload and the remote pip; each is now a step the CLI times. ``codebolt logs``
    reads the daemon's node.log on the host, and follows it with tail -F until Ctrl-C."""
    from log_follow import Follower, logs

    cold = tmp_path_factory.mktemp("cold-host")  # never bootstrapped: every step happens
    path = _topology(tmp_path / "topology.yaml", servers.settings(), cold)
    cli = [sys.executable, "-m", "codebolt_topo.cli.main"]
    applied = subprocess.run(
        [*cli, "apply", "--auto-approve"], cwd=tmp_path, capture_output=True, text=True, timeout=200
    )
    try:
        assert applied.returncode == 0, applied.stderr
        steps = [line[4:] for line in applied.stderr.splitlines() if line.startswith("vm: ")]
        expected = [
            "starting (cloud-vm)",
            "building wheels",
            f"preparing {_user()}@127.0.0.1:{servers.ports['target']}",
            f"uploading {len(wheels.wheels)} wheels (",
            "installing",
            "starting the daemon",
            "opening the tunnel",
            "running at wss://127.0.0.1:",  # its server speaks TLS (engine/certificates.py)
            "configured (generation 1)",
        ]
        assert len(steps) == len(expected), steps
        assert all(step.startswith(want) for step, want in zip(steps, expected, strict=True))
        # the line after the remote pip install closes it and says how long it took
        assert re.search(r"\(\d+\.\d s\)$", steps[expected.index("installing") + 1]), steps

        everything = logs("vm", cwd=tmp_path)
        assert everything.returncode == 0, everything.stderr
        assert "node vm of cloudy listening on 127.0.0.1:" in everything.stdout
        last = logs("vm", "--tail", "1", cwd=tmp_path).stdout.splitlines()
        assert last == everything.stdout.splitlines()[-1:]

        node_log = Path(state_file_for(path, "cloudy").load().nodes["vm"].handle["remote"]["dir"])
        tail = b"-F\x00" + str(node_log / "node.log").encode()  # NUL-separated arguments
        follower = Follower("vm", cwd=tmp_path)
        try:
            follower.wait_for(lambda line: "listening on" in line)
            assert _running_commands(tail), "no tail -F on the host"
            with (node_log / "node.log").open("a") as log:
                log.write("2026-01-01 00:00:00,000 INFO written after logs -f started\n")
            follower.wait_for(lambda line: line.endswith("written after logs -f started"))
        finally:
            code, stderr = follower.stop()
        assert code == 0, stderr
        deadline = time.monotonic() + 10
        while _running_commands(tail) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running_commands(tail) == [], "the remote tail outlived logs -f"
    finally:
        subprocess.run([*cli, "destroy", "--auto-approve"], cwd=tmp_path, timeout=120)
