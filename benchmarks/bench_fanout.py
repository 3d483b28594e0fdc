"""Fan-out: one command on 10 and 50 nodes at once, time until every result is back.

Run: ``python benchmarks/bench_fanout.py [--repeat 20]``. An entry node ``hub`` with an edge to
each of 50 workers (``codebolt_topo.testing.Cluster``: the daemons apply starts) gets one
``exec`` naming 10 or 50 targets; the figure is the time from the request to the last ``Exit``.
Peer: the same targets one request after the other on the same connection (what a loop over
nodes would pay), printed as a ratio. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_ms, load_note, summary

from codebolt_topo.client import Exit, NodeClient
from codebolt_topo.testing import Cluster

WORKERS = [f"w{i}" for i in range(1, 51)]


async def _once(client: NodeClient, targets: list[str], argv: list[str]) -> None:
    result = await (await client.exec(targets, argv=argv)).result()
    exits = [node.exit for node in result.nodes.values() if isinstance(node.exit, Exit)]
    if len(exits) != len(targets) or any(e.code != 0 for e in exits):
        raise SystemExit(f"fan-out to {len(targets)} nodes failed: {result.failures}")


async def _measure(
    cluster: Cluster, repeat: int, argv: list[str]
) -> dict[int, tuple[list[float], list[float]]]:
    figures: dict[int, tuple[list[float], list[float]]] = {}
    async with cluster.client("hub") as client:
        await _once(client, WORKERS, argv)  # opens every link
        for count in (10, 50):
            targets = WORKERS[:count]
            together, one_by_one = [], []
            for _ in range(repeat):
                start = time.perf_counter()
                await _once(client, targets, argv)
                together.append(time.perf_counter() - start)
                start = time.perf_counter()
                for target in targets:
                    await _once(client, [target], argv)
                one_by_one.append(time.perf_counter() - start)
            figures[count] = (together, one_by_one)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"fan-out, {load_note()}")
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-fanout-") as tmp:
        cluster = Cluster(Path(tmp), [("hub", w) for w in WORKERS])
        start = time.perf_counter()
        cluster.start(timeout=120)
        started = time.perf_counter() - start
        try:
            asyncio.run(cluster.configure())
            figures = asyncio.run(_measure(cluster, args.repeat, ["true"]))
        finally:
            cluster.stop()
    print(f"  ({len(WORKERS) + 1} daemons spawned to ready in {started:.2f} s, in parallel)")
    print(
        f"exec true on N nodes at once through one entry, median of {args.repeat} (p10-p90 or "
        "min-max); peer = the same N one after the other"
    )
    for count, (together, one_by_one) in figures.items():
        ratio = summary(one_by_one)[0] / summary(together)[0]
        print(
            f"  {count:2d} nodes: all results back {fmt_ms(together)}   "
            f"one by one {fmt_ms(one_by_one)} ({ratio:.1f}x)"
        )


if __name__ == "__main__":
    main()
