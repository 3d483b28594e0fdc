"""``exec true`` through a link the receiver dialed vs one the sender dialed (issue 14).

Run: ``python benchmarks/bench_dial.py [--repeat N]``. Real daemons on loopback (the project's
test cluster), two clusters side by side: plain ``ws://``, and TLS with the topology's
certificates (pinned). In each, entry ``a`` has two peers: ``s``, whose link ``a`` opened, and
``r``, who opened its link to ``a`` (``dial: receiver``). Each round sends ``exec true`` once to
each of the six nodes, starting at a rotating position, so a busy moment of a shared machine
weighs on all alike. A hop's cost is measured per round, paired: the round's time to ``s`` (or
``r``) minus its time to ``a`` (the entry's own exec); the figure is the median of those
differences over the rounds, with p10-p90. Then ``--mib`` MiB of output streamed from ``s``
and from ``r`` (interleaved, ``--streams`` each): a WebSocket client masks every frame it sends,
and on a receiver-dialed link the client is the end that sends the output. It prints figures
and their ratio; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_ms, load_note, summary

from codebolt_topo.testing import Cluster
from codebolt_topo.wire.pki import issue_ca

NODES = ("a", "s", "r")
KINDS = ("ws", "tls")


def _cluster(root: Path, tls: bool) -> Cluster:
    identities = None
    if tls:
        ca = issue_ca("bench")
        identities = {node: ca.issue(node) for node in NODES}
    return Cluster(root, [("a", "s"), ("a", "r")], dial={("a", "r")}, tls=identities)


@contextlib.asynccontextmanager
async def _clients(clusters: dict[str, Cluster]) -> AsyncIterator[dict[str, Any]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {k: await stack.enter_async_context(c.client("a")) for k, c in clusters.items()}


async def _exec_true(client: Any, target: str) -> float:
    start = time.perf_counter()
    result = await (await client.exec(target, argv=["true"])).result()
    elapsed = time.perf_counter() - start
    done = result[target].exit
    if done is None or done.code != 0:
        raise SystemExit(f"exec true on {target} failed: {result[target]}")
    return elapsed


async def _rounds(clusters: dict[str, Cluster], repeat: int) -> dict[tuple[str, str], list[float]]:
    order = [(kind, node) for kind in KINDS for node in NODES]
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in order}
    async with _clients(clusters) as clients:
        for _ in range(max(5, repeat // 10)):  # open and warm every link
            for kind, node in order:
                await _exec_true(clients[kind], node)
        for index in range(repeat):
            shift = index % len(order)
            for kind, node in order[shift:] + order[:shift]:
                samples[(kind, node)].append(await _exec_true(clients[kind], node))
    return samples


async def _streams(
    clusters: dict[str, Cluster], mib: int, count: int
) -> dict[tuple[str, str], list[float]]:
    """MiB/s of ``mib`` MiB of stdout from ``s`` and ``r``, per cluster, interleaved."""
    size = mib * 1024 * 1024
    rates: dict[tuple[str, str], list[float]] = {(k, n): [] for k in KINDS for n in "sr"}
    async with _clients(clusters) as clients:
        for _ in range(count):
            for kind, node in rates:
                start = time.perf_counter()
                received = 0
                handle = await clients[kind].exec(node, shell=f"head -c {size} /dev/zero")
                async for event in handle:
                    received += len(getattr(event, "data", b""))
                if received != size:
                    raise SystemExit(f"{node}: {received} of {size} bytes")
                rates[(kind, node)].append(mib / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--streams", type=int, default=3)
    args = parser.parse_args()
    print(f"exec true, {args.repeat} rounds over 6 nodes; {load_note()}")
    with tempfile.TemporaryDirectory(prefix="bench-dial-") as tmp:
        clusters = {kind: _cluster(Path(tmp) / kind, kind == "tls") for kind in KINDS}
        try:
            for cluster in clusters.values():
                cluster.start()
                asyncio.run(cluster.configure())
            samples = asyncio.run(_rounds(clusters, args.repeat))
            rates = asyncio.run(_streams(clusters, args.mib, args.streams))
        finally:
            for cluster in clusters.values():
                cluster.stop()
    for kind in KINDS:
        entry = samples[(kind, "a")]
        hops = {n: [t - e for t, e in zip(samples[(kind, n)], entry, strict=True)] for n in "sr"}
        print(f"\n{'TLS 1.3, pinned (wss)' if kind == 'tls' else 'plain ws (loopback)'}")
        print(f"  entry a itself            {fmt_ms(entry)}")
        for node, label in (("s", "a -> s, sender dialed  "), ("r", "a -> r, receiver dialed")):
            print(f"  {label}   {fmt_ms(samples[(kind, node)])}   per hop {fmt_ms(hops[node])}")
        ratio = summary(hops["r"])[0] / summary(hops["s"])[0]
        print(f"  per hop, receiver / sender dialed: {ratio:.3f}")
        s_rate, r_rate = (summary(rates[(kind, n)])[0] for n in "sr")
        print(
            f"  {args.mib} MiB of output through the hop: sender dialed {s_rate:.0f} MiB/s, "
            f"receiver dialed {r_rate:.0f} MiB/s ({r_rate / s_rate:.2f})"
        )
    print(f"\n{load_note()}")


if __name__ == "__main__":
    main()
