"""Issue 14: a cloud-vm node sends work to a cloud-vm node on another host, directly.

Two hosts are network namespaces of a :class:`~multihost.network.Lab` on its "internet", each
running a real OpenSSH server on its own address. The orchestrator (this process, on the same
bridge) bootstraps a daemon on each over SSH; both listen beyond loopback (``host: 0.0.0.0``),
so they serve TLS with the certificates the topology issues, and ``a`` reaches ``b`` at
``b``'s host address, pinning the topology's CA and ``b``'s name: the work goes host to host,
not through this machine (``b`` sees it come from ``srv1``'s address, and nothing here relays
it: this machine's tunnels carry only the admin connections).

Runs as root (CI is); elsewhere it skips, unless ``CODEBOLT_REQUIRE_NETNS=1``, where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from multihost.network import Lab, require_netns
from sshd_keys import make_ssh_keys

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.providers.cloud_vm.wheelhouse import wheelhouse

pytestmark = [pytest.mark.multihost, pytest.mark.ssh, pytest.mark.slow, pytest.mark.timeout(300)]

SSH_PORT = 2222


@contextlib.contextmanager
def ssh_servers(lab: Lab, root: Path) -> Iterator[str]:
    """sshd on each server of ``lab``, on its own address; yields the host public key."""
    make_ssh_keys(root)
    procs = []
    try:
        for server in ("srv1", "srv2"):
            config = root / f"sshd-{server}.conf"
            config.write_text(
                f"Port {SSH_PORT}\nListenAddress {lab.server(server)}\n"
                f"HostKey {root / 'host'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                f"StrictModes no\nPidFile {root / f'sshd-{server}.pid'}\n"
                "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
                "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
            )
            procs.append(
                subprocess.Popen(
                    [
                        *lab.prefix(server),
                        shutil.which("sshd") or "/usr/sbin/sshd",
                        "-D",
                        "-e",
                        "-f",
                        str(config),
                    ],
                    stderr=subprocess.DEVNULL,
                )
            )
        for server in ("srv1", "srv2"):
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError):
                    socket.create_connection((lab.server(server), SSH_PORT), timeout=1).close()
                    break
                assert time.monotonic() < deadline, f"sshd on {server} did not start"
                time.sleep(0.1)
        yield " ".join((root / "host.pub").read_text().split()[:2])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _node(name: str, address: str, root: Path, host_key: str) -> str:
    return (
        f"  {name}:\n    provider: cloud-vm\n    host: 0.0.0.0\n    ssh:\n"
        f"      host: {address!r}\n      port: {SSH_PORT}\n      user: root\n"
        f"      identity_file: {str(root / 'id')!r}\n      host_key: {host_key!r}\n"
        f"      remote_dir: {str(root / ('remote-' + name))!r}\n"
        f"      python: {sys._base_executable!r}\n"
    )


def test_a_cloud_vm_node_sends_work_to_one_on_another_host(tmp_path: Path) -> None:
    require_netns()
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is needed (apt-get install openssh-server)")
    tmp_path.chmod(0o755)
    wheelhouse()  # built (or found cached) before the clock of the apply starts
    lab = Lab(laptops=0, servers=2).up()
    try:
        with ssh_servers(lab, tmp_path) as host_key:
            path = tmp_path / "topology.yaml"
            path.write_text(
                "name: hosts\nnodes:\n  laptop: {}\n"
                + _node("a", lab.server("srv1"), tmp_path, host_key)
                + _node("b", lab.server("srv2"), tmp_path, host_key)
                + "edges: [laptop -> a, a -> b]\n"
            )
            apply_topology(path)
            try:
                state = state_file_for(path, "hosts").load()

                async def run() -> tuple[bytes, dict[str, object]]:
                    async with NodeClient.admin(state.nodes["laptop"]) as laptop:
                        result = await (
                            await laptop.exec("b", shell="echo $CODEBOLT_NODE")
                        ).result()
                    async with NodeClient.admin(state.nodes["b"]) as b:
                        seen = await b.presence("a")
                    return result["b"].stdout, seen

                stdout, seen = asyncio.run(run())
                assert stdout == b"b\n"
                # b was reached from a's host, at b's host address, over TLS.
                assert str(seen["remote"]).startswith(f"{lab.server('srv1')}:"), seen
                assert state.nodes["b"].pinned_ca is not None
            finally:
                destroy_topology(path)
    finally:
        lab.close()
        with contextlib.suppress(OSError):
            os.remove(tmp_path / "id")
