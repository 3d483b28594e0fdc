"""Issue 14: links that leave this host run over TLS with the certificates ``apply`` issues.

Against real OpenSSH servers (the fixtures of test_cloud_vm_provider.py): a local node sends
work to cloud-vm nodes on an SSH host. Their daemons serve TLS only, with a certificate naming
the node, issued by the topology's CA that apply made once and keeps sealed in the state; the
engine and the local node pin that CA and the node's name. Shown from the outside: plain ws, a
client pinning another CA, a peer certificate from another CA, and a certificate of this CA
naming another node are all refused, while the right one is served; no key material reaches
the logs or ``state pull``; re-applying keeps every certificate and process; a node added later
gets a certificate from the same CA; destroy removes the CA.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from test_cloud_vm_provider import Servers, remote_dir, servers, wheels

from codebolt_topo.client import NodeClient
from codebolt_topo.credentials import read_credentials
from codebolt_topo.engine.operations import apply_topology, plan_topology, state_file_for
from codebolt_topo.errors import TopoError
from codebolt_topo.model.state import State
from codebolt_topo.providers.cloud_vm.wheelhouse import Wheelhouse
from codebolt_topo.wire.config import TlsIdentity
from codebolt_topo.wire.link import open_connection
from codebolt_topo.wire.pki import CertificateAuthority, issue_ca
from codebolt_topo.wire.tls import client_context

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "engine"))
from local_topology import applied_topology

__all__ = ["remote_dir", "servers", "wheels"]  # the fixtures, shared with the provider tests

pytestmark = [pytest.mark.ssh, pytest.mark.slow, pytest.mark.timeout(300)]


def _write(path: Path, ssh: dict[str, Any], remote: Path, vms: list[str]) -> Path:
    ssh_lines = "".join(f"      {key}: {json.dumps(value)}\n" for key, value in ssh.items())
    vm_blocks = "".join(
        f"  {vm}:\n    provider: cloud-vm\n    ssh:\n{ssh_lines}"
        f"      remote_dir: {json.dumps(str(remote))}\n"
        f"      python: {json.dumps(sys._base_executable)}\n"
        for vm in vms
    )
    edges = "".join(f"  - laptop -> {vm}\n" for vm in vms)
    path.write_text(f"name: cloudy\nnodes:\n  laptop: {{}}\n{vm_blocks}edges:\n{edges}")
    return path


def _host_file(state: State, node: str, name: str) -> Path:
    return Path(state.nodes[node].handle["remote"]["dir"]) / name


async def _knock(url: str, token: str, tls: Any) -> None:
    """Open and close one connection to node ``vm`` (raises when refused)."""
    ws = await open_connection(url, token, "vm", tls=tls)
    await ws.close()


def _refused(url: str, token: str, tls: Any) -> str:
    with pytest.raises((TopoError, OSError)) as caught:
        asyncio.run(_knock(url, token, tls))
    return str(caught.value)


def test_links_to_another_host_are_tls_pinned_to_the_topology_ca(
    servers: Servers, wheels: Wheelhouse, remote_dir: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path / "topology.yaml", servers.settings(), remote_dir, ["vm"])
    with applied_topology(path) as applied:
        state = applied.state
        assert state.ca is not None
        ca = state.ca.cert
        laptop, vm = state.nodes["laptop"], state.nodes["vm"]
        assert vm.url is not None
        assert vm.url.startswith("wss://127.0.0.1:"), vm.url
        assert vm.pinned_ca == ca
        assert laptop.url is not None
        assert laptop.url.startswith("ws://"), "loopback stays plain"

        # The certificate on the host names the node and comes from the topology's CA.
        launch = _host_file(state, "vm", "launch.json")
        assert launch.stat().st_mode & 0o777 == 0o600
        served = TlsIdentity.model_validate(json.loads(launch.read_text())["tls"])
        assert served.serve
        assert served.ca == ca
        cert = x509.load_pem_x509_certificate(served.cert.encode())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["vm"]
        assert cert.issuer == x509.load_pem_x509_certificate(ca.encode()).subject

        # Work crosses the link laptop -> vm (laptop presents its own certificate), and the
        # engine's own admin connection pins the CA and the name.
        assert applied.run("vm", ["echo", "over tls"])["vm"].stdout == b"over tls\n"

        async def info() -> dict[str, Any]:
            async with NodeClient.admin(vm) as client:
                return await client.info()

        assert asyncio.run(info())["node"] == "vm"

        # Whoever acts as vm from its credentials file pins the CA written beside the URL.
        cli = [sys.executable, "-m", "codebolt_topo.cli.main"]
        out = tmp_path / "vm.credentials.json"
        subprocess.run(
            [*cli, "state", "credentials", "vm", "-o", str(out)], cwd=tmp_path, check=True
        )
        creds = read_credentials(out)
        assert creds.ca == ca

        async def info_from_credentials() -> dict[str, Any]:
            async with NodeClient.connect(creds.url, creds.token, name="vm", ca=creds.ca) as c:
                return await c.info()

        assert asyncio.run(info_from_credentials())["node"] == "vm"

        # What the server refuses, next to what it serves.
        token = state.edge_tokens["laptop->vm"]
        plain = vm.url.replace("wss://", "ws://")
        _refused(plain, vm.admin_token, None)
        stranger = issue_ca("another")
        _refused(vm.url, vm.admin_token, client_context(stranger.cert))
        ours = CertificateAuthority(cert=ca, key=state.ca.key)
        forged = client_context(ca, stranger.issue("laptop"))
        _refused(vm.url, token, forged)
        misnamed = _refused(vm.url, token, client_context(ca, ours.issue("mallory")))
        assert "403" in misnamed or "certificate" in misnamed, misnamed
        asyncio.run(_knock(vm.url, token, client_context(ca, ours.issue("laptop"))))

        # No key material at rest in the open or in logs.
        state_path = state_file_for(path, "cloudy").path
        assert state_path.stat().st_mode & 0o777 == 0o600
        stored = state_path.read_text()
        assert "PRIVATE KEY" not in stored, "the CA key is sealed in the state"
        assert json.loads(stored)["ca"]["key"].startswith("sealed:v1:")
        pulled = subprocess.run(
            [*cli, "state", "pull"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "PRIVATE KEY" not in pulled
        assert json.loads(pulled)["ca"]["cert"] == ca
        node_dir = state_file_for(path, "cloudy").runtime_dir / "nodes" / "laptop"
        logs = (node_dir / "node.log").read_text() + _host_file(state, "vm", "node.log").read_text()
        key_body = served.key.splitlines()[1]
        assert "PRIVATE KEY" not in logs
        assert key_body not in logs

        # Re-applying issues nothing: the same certificate, the same daemon.
        pid = vm.handle["remote"]["pid"]
        assert plan_topology(path).actions == ()
        apply_topology(path)
        again = applied.state
        assert again.ca is not None
        assert again.ca.cert == ca
        assert again.nodes["vm"].handle["remote"]["pid"] == pid
        assert TlsIdentity.model_validate(json.loads(launch.read_text())["tls"]) == served

        # A node added later gets its own certificate from the same CA.
        _write(path, servers.settings(), remote_dir, ["vm", "vm2"])
        apply_topology(path)
        grown = applied.state
        assert grown.ca is not None
        assert grown.ca.cert == ca
        assert grown.nodes["vm2"].pinned_ca == ca
        second = json.loads(_host_file(grown, "vm2", "launch.json").read_text())["tls"]
        assert second["cert"] != served.cert
        assert second["ca"] == ca
        assert applied.run("vm2", ["echo", "second"])["vm2"].stdout == b"second\n"

    after = state_file_for(path, "cloudy").load()
    assert after.ca is None, "destroy removes the CA with the nodes"
    assert not after.nodes
