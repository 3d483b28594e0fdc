"""Issue 14: a team across real network boundaries, through the real CLI.

The hub and two workers run on the hub's host (the orchestrator's ``codebolt`` runs there too);
``dev-alice`` and ``dev-bob`` join from two laptops, each behind its own NAT
(:class:`~multihost.network.Lab` with two homes). A probe shows the hub cannot connect to
either laptop. Both joined nodes show RUNNING in the orchestrator's status with a heartbeat
taken over the links they opened; alice runs work on a worker from her machine; bob can neither
attach to nor repeat alice's job, even knowing its request id (ownership follows the edges:
bob is upstream of alice through the hub, never the other way round); the hub's work on alice's node
streams over the link she opened, her uplink is cut with iptables mid-stream and restored, and
the stream resumes byte-identical with one exit. Bob leaving shows him STOPPED. Every address is
inside the lab's namespaces.

Runs as root (CI is); elsewhere it skips, unless ``CODEBOLT_REQUIRE_NETNS=1``, where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from multihost.network import PROBE, Lab, require_netns
from multihost.outage import Outage, stream_through_outage

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.model.state import State

pytestmark = [pytest.mark.multihost, pytest.mark.slow, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
TOPOLOGY = """name: team
heartbeat: {{interval: 1, timeout: 3}}
nodes:
  hub: {{host: {hub}, port: 3100}}
  worker: {{count: 2}}
  dev-alice: {{provider: joined}}
  dev-bob: {{provider: joined}}
edges:
  - dev-alice -> hub
  - dev-bob -> hub
  - hub -> worker
  - hub -> dev-alice     # the hub may send work to alice's node (not to bob's)
"""
TICKS = "for i in $(seq 1 30); do echo tick $i; sleep 0.1; done"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "CODEBOLT_ZYGOTE": "0", "CODEBOLT_BROKER": "0"}


@dataclass
class Team:
    lab: Lab
    folder: Path
    laptops: dict[str, Path] = field(default_factory=dict)
    joins: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def codebolt(
        self, role: str, *args: str, cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``codebolt ARGS`` on ``role``'s host (the orchestrator's: ``hub``)."""
        return subprocess.run(
            [*self.lab.prefix(role), sys.executable, "-m", "codebolt_topo.cli.main", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=ENV,
            check=False,
        )

    def ok(self, role: str, *args: str, cwd: Path | None = None) -> str:
        done = self.codebolt(role, *args, cwd=cwd or self.folder)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def state(self) -> State:
        return state_file_for(self.folder / "topology.yaml", "team").load()

    def join(self, node: str, laptop: str) -> None:
        """Hand ``node``'s credential to ``laptop`` and join from there."""
        directory = self.folder.parent / laptop
        directory.mkdir()
        self.ok("hub", "state", "credentials", node, "-o", str(directory / "join.json"))
        url = f"wss://{self.lab.hub}:3100"
        process = subprocess.Popen(
            [
                *self.lab.prefix(laptop),
                sys.executable,
                "-m",
                "codebolt_topo.cli.main",
                "join",
                url,
                "--credentials",
                "join.json",
            ],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        assert process.stdout is not None
        said = []
        for line in process.stdout:
            said.append(line)
            if "running here" in line:
                break
        else:
            raise AssertionError(f"{node} did not join: {''.join(said)}")
        self.laptops[node], self.joins[node] = directory, process

    def client(self, laptop: str, node: str, *args: str) -> subprocess.Popen[str]:
        """The developer's own client on ``laptop`` (multihost/laptop_client.py)."""
        return subprocess.Popen(
            [
                *self.lab.prefix(laptop),
                sys.executable,
                str(HERE / "laptop_client.py"),
                str(self.laptops[node] / ".codebolt" / "joined"),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )

    def row(self, node: str) -> dict[str, object]:
        rows = json.loads(self.ok("hub", "status", "--json"))["nodes"]
        (found,) = [r for r in rows if r["name"] == node]
        return dict(found)

    def wait_row(self, node: str, shown: str, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.row(node)
            if shown in f"{found['lifecycle']} {found['heartbeat_error']}":
                return found
            assert time.monotonic() < deadline, found
            time.sleep(0.5)

    def close(self) -> None:
        for process in self.joins.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    require_netns()
    root = tmp_path_factory.mktemp("team-nat")
    root.chmod(0o755)
    lab = Lab(laptops=2).up()
    folder = root / "orchestrator"
    folder.mkdir()
    (folder / "topology.yaml").write_text(TOPOLOGY.format(hub=lab.hub))
    site = Team(lab, folder)
    try:
        site.ok("hub", "apply", "--auto-approve")
        site.join("dev-alice", "lap")
        site.join("dev-bob", "lap2")
        yield site
    finally:
        site.close()
        site.codebolt("hub", "destroy", "--auto-approve", cwd=folder)
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def test_the_hub_cannot_dial_the_laptops_yet_both_show_running(team: Team) -> None:
    lab = team.lab
    for laptop in ("lap", "lap2"):
        for address in (lab.address_of(laptop), lab.nat_public_of(laptop)):
            probe = lab.run("hub", sys.executable, "-c", PROBE, address, "3100", check=False)
            assert probe.returncode == 1, f"the hub reached {address}: NAT is not a boundary"
    for node in ("dev-alice", "dev-bob"):
        row = team.wait_row(node, "RUNNING ")
        assert row["heartbeat_ms"] is not None, row  # a ping over the link the laptop opened


def test_alice_works_from_her_machine_and_bob_cannot_touch_her_job(team: Team) -> None:
    said = team.codebolt(
        "lap",
        "exec",
        "worker-1",
        "--",
        "sh",
        "-c",
        "echo hello from $CODEBOLT_NODE",
        cwd=team.laptops["dev-alice"],
    )
    assert said.returncode == 0, said.stderr
    assert said.stdout == "hello from worker-1\n"

    alice = team.client("lap", "dev-alice", "run", "alice-train-1", "worker-1", TICKS)
    assert alice.stdout is not None
    assert json.loads(alice.stdout.readline()) == {"ready": True}
    bob = team.client("lap2", "dev-bob", "steal", "alice-train-1", "worker-1")
    stolen, errors = bob.communicate(timeout=60)
    assert bob.returncode == 0, errors
    refused = json.loads(stolen)
    for attempt in ("attach", "exec"):
        assert refused[attempt], f"bob's {attempt} was not refused"
        assert all(f["code"] == "forbidden" for f in refused[attempt]), refused
    finished = json.loads(alice.stdout.readline())
    alice.communicate(timeout=30)  # the rest, and the pipes closed
    assert finished["code"] == 0, finished
    assert finished["stdout"].split() == [w for i in range(1, 31) for w in ("tick", str(i))]


def test_alices_uplink_cut_mid_stream_resumes_byte_identical(team: Team) -> None:
    async def main() -> Outage:  # the orchestrator's client, through the hub, over her link
        async with NodeClient.admin(team.state().nodes["hub"], retries=20) as hub:
            return await stream_through_outage(team.lab, "nat", hub, "dev-alice")

    asyncio.run(main()).check()


def _tcp_bytes(client: NodeClient) -> int:
    """Bytes the kernel moved both ways on ``client``'s socket (TCP_INFO ``tcpi_bytes_acked``
    + ``tcpi_bytes_received``): everything that crossed this process on it, TLS included."""
    sock = client._link.ws.transport.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    sent, received = struct.unpack_from("<QQ", info, 120)
    return int(sent + received)


def test_alices_snapshots_reach_the_hub_along_her_edge_not_through_the_orchestrator(
    team: Team,
) -> None:
    alice = team.laptops["dev-alice"]
    took = team.codebolt(
        "lap",
        "exec",
        "--snapshot",
        "after",
        "--objective",
        "ship",
        "--thread",
        "alice-work",
        "--run",
        "r1",
        "dev-alice",
        "--",
        "sh",
        "-c",
        "head -c 4000000 /dev/urandom > data.bin",
        cwd=alice,
    )
    assert took.returncode == 0, took.stderr

    async def pull() -> tuple[dict[str, object], int]:  # the orchestrator asks, and only asks
        async with NodeClient.admin(team.state().nodes["hub"]) as hub:
            await hub.link()
            before = _tcp_bytes(hub)
            synced = await hub.sync("dev-alice", "pull")
            return synced, _tcp_bytes(hub) - before

    synced, crossed = asyncio.run(pull())
    assert int(synced["bytes"]) > 4_000_000, (synced, took.stderr)  # type: ignore[call-overload]
    assert "alice-work" in synced["report"]["created"]  # type: ignore[index]
    assert crossed < 16 << 10, f"{crossed} bytes crossed the orchestrator"

    # From her own machine, alice pushes along dev-alice -> hub: the hub has it all already.
    pushed = team.codebolt("lap", "sync", cwd=alice)
    assert pushed.returncode == 0, pushed.stderr
    assert "dev-alice->hub push dev-alice => hub:" in pushed.stdout, pushed.stdout
    assert "1 unchanged" in pushed.stdout, pushed.stdout


def test_bob_leaving_shows_stopped(team: Team) -> None:
    team.ok("lap2", "leave", cwd=team.laptops["dev-bob"])
    assert team.joins["dev-bob"].wait(20) == 0
    team.wait_row("dev-bob", "STOPPED (left at")
    assert "RUNNING" in str(team.row("dev-alice")["lifecycle"])
