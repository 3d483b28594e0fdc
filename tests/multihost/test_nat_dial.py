"""Issue 14, item 1, across a real network boundary: a laptop behind NAT receives work from a
hub that cannot connect to it, because the laptop dials out.

Hosts are network namespaces made here (:mod:`multihost.network`): a bridge namespace for the
internet, the hub on it, a home router doing MASQUERADE and the laptop behind it; this process
is the operator's client on the bridge. A probe shows the hub really cannot connect in (to the
laptop's address: no route; to the router's public address: refused), a hub that dials
(``dial: sender``) gets ``unreachable``, and the same edge with ``dial: receiver`` runs work on
the laptop over the link the laptop opened. Both links are TLS with the topology's
certificates. Then the laptop's uplink is cut with iptables mid-stream and restored: the stream
resumes byte-identical with one exit.

Runs as root (CI is); elsewhere it skips, unless ``CODEBOLT_REQUIRE_NETNS=1``, where it fails.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from multihost.daemons import NetDaemons
from multihost.network import PROBE, Lab, require_netns
from multihost.outage import Outage, stream_through_outage

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.wire.config import (
    DialOut,
    LaunchConfig,
    PeerLink,
    RuntimeConfig,
    token_digest,
)
from codebolt_topo.wire.pki import CertificateAuthority, issue_ca
from codebolt_topo.wire.tls import client_context

pytestmark = [pytest.mark.multihost, pytest.mark.slow, pytest.mark.timeout(180)]

PORT = 3100
ADMIN = "admin-token-multihost"
WORK = "edge-hub-lap-work-token"
DIAL = "edge-hub-lap-dial-token"
KEEPALIVE = {"keepalive_interval": 0.5, "keepalive_timeout": 1.5}


@dataclass
class Site:
    lab: Lab
    daemons: NetDaemons
    ca: CertificateAuthority
    generation: int = 0

    @property
    def hub_url(self) -> str:
        return f"wss://{self.lab.hub}:{PORT}"

    def client(self, **options: Any) -> Any:
        return NodeClient.connect(
            self.hub_url, ADMIN, name="hub", tls=client_context(self.ca.cert), **options
        )

    async def wire_hub(self, dial: str) -> None:
        """Push the hub its edge to the laptop, dialed by ``dial``."""
        self.generation += 1
        peer = (
            PeerLink(url=f"wss://{self.lab.lap}:{PORT}", token=WORK)
            if dial == "sender"
            else PeerLink(token=WORK, dial="receiver", dialer_digest=token_digest(DIAL))
        )
        runtime = RuntimeConfig(generation=self.generation, peers={"lap": peer}, **KEEPALIVE)
        async with self.client() as client:
            await client.configure(runtime)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_netns()
    root = tmp_path_factory.mktemp("multihost")
    root.chmod(0o755)
    lab = Lab().up()
    daemons = NetDaemons(root, lab)
    ca = issue_ca("multihost")
    try:
        daemons.start("hub", _launch(root, "hub", lab.hub, ca, RuntimeConfig(**KEEPALIVE)))
        laptop = RuntimeConfig(
            generation=1,
            accept={"hub": token_digest(WORK)},
            dial={"hub": DialOut(url=f"wss://{lab.hub}:{PORT}", token=DIAL)},
            plugins={"remote-execution": {}},
            **KEEPALIVE,
        )
        daemons.start("lap", _launch(root, "lap", lab.lap, ca, laptop))
        yield Site(lab, daemons, ca)
    finally:
        daemons.stop()
        lab.close()


def _launch(
    root: Path, node: str, host: str, ca: CertificateAuthority, runtime: RuntimeConfig
) -> LaunchConfig:
    workspace = root / node / "ws"
    workspace.mkdir(parents=True)
    return LaunchConfig(
        topology="multihost",
        node=node,
        host=host,
        port=PORT,
        admin_token_digest=token_digest(ADMIN),
        workspace=str(workspace),
        state_dir=str(root / node),
        tls=ca.issue(node),
        runtime=runtime,
    )


def test_the_hub_cannot_connect_in_yet_runs_work_over_the_link_the_laptop_dialed(
    site: Site,
) -> None:
    lab = site.lab
    for address in (lab.lap, lab.nat_public):
        probe = lab.run("hub", sys.executable, "-c", PROBE, address, str(PORT), check=False)
        assert probe.returncode == 1, f"the hub reached {address}: the NAT is not a boundary"
    out = lab.run("lap", sys.executable, "-c", PROBE, lab.hub, str(PORT), check=False)
    assert out.returncode == 0, out.stdout  # the laptop can reach the hub: it dials out

    async def main() -> tuple[ExecResult, ExecResult]:
        await site.wire_hub("sender")
        async with site.client() as client:
            refused = await (await client.exec("lap", argv=["true"])).result()
        await site.wire_hub("receiver")
        async with site.client() as client:
            ran = await (await client.exec("lap", shell="echo $CODEBOLT_NODE")).result()
        return refused, ran

    refused, ran = asyncio.run(main())
    failure = refused["lap"].failure
    assert failure is not None
    assert failure.code == "unreachable", failure
    assert ran.failures == []
    assert ran["lap"].stdout == b"lap\n"
    assert ran["lap"].exit is not None
    assert ran["lap"].exit.code == 0
    assert "link hub -> lap open (dialed by lap)" in site.daemons.log("hub")


def test_the_laptops_uplink_cut_mid_stream_and_restored_resumes_byte_identical(
    site: Site,
) -> None:
    async def main() -> Outage:
        await site.wire_hub("receiver")
        async with site.client(retries=20) as client:
            return await stream_through_outage(site.lab, "nat", client, "lap")

    asyncio.run(main()).check()
    assert site.daemons.log("lap").count("link hub -> lap open (dialed by lap)") >= 2
