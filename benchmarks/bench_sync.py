"""Narrative sync of a real tree, node to node along the edge vs relayed through the orchestrator.

Run: ``python benchmarks/bench_sync.py [--files 5000] [--corpus DIR] [--repeat 3]``. Starts a
local topology (``a`` and, per round, receivers ``bK`` and ``cK``: edges ``a -> bK`` and
``a -> cK``, ``sync: push``), copies the first ``--files`` files (sorted paths, none over
1 MiB) of ``--corpus`` (default: this interpreter's site-packages, real text and binary files)
into ``a``'s workspace and snapshots it. Each round then moves the same history twice, into
fresh stores:

- **node to node**: what ``codebolt sync a->bK`` does (``engine.sync.sync_edges``): the
  orchestrator sends ``a`` one ``sync``; ``a`` streams the bundle to ``bK`` over their link;
- **relayed**: the same transfer to ``cK`` the way ``codebolt sync`` did it before, kept as
  ``engine.sync_relay.relay_transfer``: the bundle pulled out of ``a`` and pushed into ``cK`` by
  this process, with both admin tokens;

then 10 files spread over the tree get a line appended on ``a``, which is snapshotted, and both
edges sync again (incremental: the new blobs, trees and commit).
Each figure includes what ``codebolt sync`` itself does: read the topology and state, connect.
Bytes through the orchestrator are the kernel's count (TCP_INFO) of what crossed this process's
admin connections during the transfer, both ways, framing included. It prints figures and ratios
(relayed / node to node); it asserts nothing. Both ends are on this machine, so the time saved
by not hauling bytes over a slow laptop link does not show here; the bytes do.

``--orchestrator-link RATE`` (root: ``ip netns``, ``tc``) shows the time too: the nodes run in a
network namespace of their own, listening on its address, and this process (the orchestrator)
reaches them only over a veth shaped to RATE each way (``tc`` token bucket, e.g. ``80mbit``: a
laptop's 10 MB/s uplink to its cloud nodes). Links between the nodes stay inside their
namespace, as two cloud nodes in one region would talk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from common import load_note, summary

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.operations import apply_topology, destroy_topology
from codebolt_topo.engine.sync import Transfer, node_narrative, snapshot_nodes
from codebolt_topo.engine.sync_relay import relay_transfer
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.wire.link import Link


def socket_bytes(link: Link) -> int:
    """Bytes the kernel moved on a link's socket, both ways (TCP_INFO ``tcpi_bytes_acked`` +
    ``tcpi_bytes_received``). ``/proc/self/io`` would not do: asyncio's sockets use
    ``send``/``recv``, which its counters leave out."""
    sock = link.ws.transport.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    sent, received = struct.unpack_from("<QQ", info, 120)
    return int(sent + received)


def copy_files(source: Path, dest: Path, count: int) -> int:
    """Copy the first *count* regular files under *source* (sorted paths, none over 1 MiB: a
    source tree's files, not its largest binaries); returns their bytes."""
    total = 0
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_size <= _LARGEST
    )
    for path in files[:count]:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        total += target.stat().st_size
    if len(files) < count:
        print(f"note: {source} holds only {len(files)} such files", file=sys.stderr)
    return total


_LARGEST = 1 << 20

Measured = tuple[float, int, int]
"""(seconds, bytes through the orchestrator, bundle bytes) of one sync."""


async def relayed(path: Path, source: str, receiver: str) -> Measured:
    """One push *source* -> *receiver* through this process, with what ``codebolt sync`` does
    around it (read the file and the state, connect): the old ``codebolt sync``."""
    started = time.perf_counter()
    validated = validate_file(path)
    state = backend_for(path, validated.topology).load()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(NodeClient.admin(state.nodes[node]))
            for node in (source, receiver)
        ]
        links = [await client.link() for client in clients]
        before = sum(map(socket_bytes, links))
        done = await relay_transfer(
            Transfer(f"{source}->{receiver}", "push", source, receiver),
            node_narrative(clients[0], state, source),
            node_narrative(clients[1], state, receiver),
        )
        crossed = sum(map(socket_bytes, links)) - before
    return time.perf_counter() - started, crossed, done.bytes


async def node_to_node(path: Path, source: str, receiver: str) -> Measured:
    """The same push as ``codebolt sync`` sends it (``engine.sync.sync_edges`` per transfer:
    read the file and the state, connect to the sender, one ``sync``), on a connection whose
    socket this function can count."""
    started = time.perf_counter()
    validated = validate_file(path)
    state = backend_for(path, validated.topology).load()
    async with NodeClient.admin(state.nodes[source]) as client:
        link = await client.link()
        before = socket_bytes(link)
        synced = await client.sync(receiver, "push")
        crossed = socket_bytes(link) - before
    return time.perf_counter() - started, crossed, int(synced["bytes"])


class ShapedHost:
    """A network namespace for the nodes, reached from here over a veth shaped to ``rate``
    each way; ``address`` is the nodes' address in it. Removed (veth with it) on exit."""

    def __init__(self, rate: str) -> None:
        self.rate = rate
        tag = os.getpid() % 100000
        self.ns, self.veth = f"cbsync{tag}", f"cbs{tag}"
        self.net = f"10.251.{tag % 250}"
        self.address = f"{self.net}.2"

    def __enter__(self) -> ShapedHost:
        def sh(*argv: str) -> None:
            subprocess.run(argv, check=True, capture_output=True)

        inside = ("ip", "netns", "exec", self.ns)
        sh("ip", "netns", "add", self.ns)
        try:
            sh(*inside, "ip", "link", "set", "lo", "up")
            sh(
                "ip",
                "link",
                "add",
                self.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.ns,
            )
            sh("ip", "addr", "add", f"{self.net}.1/24", "dev", self.veth)
            sh("ip", "link", "set", self.veth, "up")
            sh(*inside, "ip", "addr", "add", f"{self.address}/24", "dev", "eth0")
            sh(*inside, "ip", "link", "set", "eth0", "up")
            shape = ("root", "tbf", "rate", self.rate, "burst", "64kb", "latency", "100ms")
            sh("tc", "qdisc", "add", "dev", self.veth, *shape)
            sh(*inside, "tc", "qdisc", "add", "dev", "eth0", *shape)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)

    def codebolt(self, *args: str, cwd: Path) -> None:
        """``codebolt ARGS`` inside the namespace (where the local provider starts daemons)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "codebolt_topo.cli.main", *args],
            cwd=cwd,
            env={**os.environ, "CODEBOLT_ZYGOTE": "0", "CODEBOLT_BROKER": "0"},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"codebolt {' '.join(args)}: {done.stderr.strip()}")


def change(root: Path, count: int, round_: int) -> None:
    """Append a line to *count* files spread over the tree."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files[:: max(1, len(files) // count)][:count]:
        with path.open("ab") as out:
            out.write(f"\n# round {round_}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    parser.add_argument("--repeat", type=int, default=3, help="rounds (fresh receivers each)")
    parser.add_argument(
        "--orchestrator-link",
        metavar="RATE",
        help="put the nodes behind a link shaped to RATE each way (tc syntax: 80mbit); root",
    )
    args = parser.parse_args()
    print(load_note())
    with contextlib.ExitStack() as stack:
        host = None
        if args.orchestrator_link:
            host = stack.enter_context(ShapedHost(args.orchestrator_link))
            print(
                f"orchestrator link: {args.orchestrator_link} each way (tc tbf), nodes in {host.ns}"
            )
        run_rounds(args, host)


def run_rounds(args: argparse.Namespace, host: ShapedHost | None) -> None:
    rounds = range(1, args.repeat + 1)
    results: dict[str, list[Measured]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        path = Path(tmp) / "topology.yaml"
        receivers = [f"{kind}{k}" for k in rounds for kind in ("b", "c")]
        listen = f"{{host: {host.address}}}" if host else "{}"
        nodes = ", ".join(f"{name}: {listen}" for name in ["a", *receivers])
        edges = "\n".join(f"  - {{from: a, to: {name}, sync: push}}" for name in receivers)
        path.write_text(f"name: benchsync\nnodes: {{{nodes}}}\nedges:\n{edges}\n")
        workspace = Path(tmp) / ".codebolt" / "benchsync" / "nodes" / "a" / "workspace"
        try:
            if host is not None:
                host.codebolt("apply", "--auto-approve", cwd=Path(tmp))
            else:
                apply_topology(path)
            size = copy_files(args.corpus, workspace, args.files)
            started = time.perf_counter()
            asyncio.run(snapshot_nodes(path, ["a"], "bench", "tree", "r0"))
            print(
                f"corpus: first {args.files} files of {args.corpus} ({size / 2**20:.1f} MiB), "
                f"snapshot on a {time.perf_counter() - started:.2f} s"
            )
            for k in rounds:
                pairs = [("edge", f"b{k}"), ("relay", f"c{k}")]
                order = pairs if k % 2 else pairs[::-1]  # the second reads a warmer cache
                for stage in ("full", "incremental"):
                    if stage == "incremental":
                        change(workspace, 10, k)
                        asyncio.run(snapshot_nodes(path, ["a"], "bench", "tree", f"inc{k}"))
                    for way, receiver in order:
                        run = node_to_node if way == "edge" else relayed
                        results.setdefault(f"{stage} {way}", []).append(
                            asyncio.run(run(path, "a", receiver))
                        )
        finally:
            if host is not None:
                host.codebolt("destroy", "--auto-approve", "--discard-history", cwd=Path(tmp))
            else:
                destroy_topology(path)
    report(results, args.repeat)


def report(results: dict[str, list[tuple[float, int, int]]], repeat: int) -> None:
    print(f"\nmedian of {repeat} rounds (min-max); bundle = what moved between the nodes")
    print(f"{'sync a -> receiver':<24}{'time':>22}{'through orchestrator':>24}{'bundle':>12}")
    for name, samples in results.items():
        median, low, high = summary([s for s, _, _ in samples])
        crossed = summary([float(c) for _, c, _ in samples])[0]
        bundle = summary([float(b) for _, _, b in samples])[0]
        print(
            f"{name:<24}{median:>8.2f} s ({low:.2f}-{high:.2f}){_bytes(crossed):>24}"
            f"{_bytes(bundle):>12}"
        )
    for kind in ("full", "incremental"):
        edge, relay = results[f"{kind} edge"], results[f"{kind} relay"]
        time_ratio = summary([r[0] / e[0] for e, r in zip(edge, relay, strict=True)])[0]
        byte_ratio = summary([r[1] / max(1, e[1]) for e, r in zip(edge, relay, strict=True)])[0]
        print(
            f"{kind}: relayed / node to node: time {time_ratio:.2f}x, "
            f"bytes through the orchestrator {byte_ratio:.0f}x"
        )


def _bytes(count: float) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


if __name__ == "__main__":
    main()
