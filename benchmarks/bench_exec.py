"""``exec true`` round trip through the Python API, direct and through 1-3 hops, next to ssh.

Run: ``python benchmarks/bench_exec.py [--repeat N]``. It applies a 4-node linear topology on
the local provider in a temporary directory, measures medians over N requests for each hop
count, then (when sshd is installed) the same through ssh: a fresh ProxyJump connection each time,
and a persistent ControlMaster connection, and Ray tasks (running ``true``, and a no-op) when Ray
is installed. It prints figures and ratios; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sshpeer import ssh_available, ssh_peers

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology
from codebolt_topo.engine.statefile import StateFile, state_dir_for

TOPOLOGY = """\
name: bench
nodes: {a: {}, b: {}, c: {}, d: {}}
edges: [{linear: [a, b, c, d]}]
"""
TARGETS = ["a", "b", "c", "d"]


def _summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=10) if len(ordered) >= 10 else [ordered[0], ordered[-1]]
    return statistics.median(ordered), q[0], q[-1]


async def _exec_latency(url: str, token: str, repeat: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    async with NodeClient.connect(url, token) as client:
        for target in TARGETS:
            for _ in range(max(5, repeat // 10)):  # warm the persistent links
                await (await client.exec(target, argv=["true"])).result()
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                result = await (await client.exec(target, argv=["true"])).result()
                samples.append(time.perf_counter() - start)
                node_result = result[target]
                if node_result.exit is None or node_result.exit.code != 0:
                    raise SystemExit(f"exec true on {target} failed: {node_result}")
            results[target] = samples
    return results


def _ssh_latency(repeat: int) -> dict[str, dict[int, list[float]]]:
    results: dict[str, dict[int, list[float]]] = {"proxyjump": {}, "persistent": {}}
    with ssh_peers(4) as peers:
        for hops in range(4):
            persistent = peers.persistent(hops, ["true"])
            subprocess.run(persistent, check=True, capture_output=True)
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                subprocess.run(persistent, check=True, capture_output=True)
                samples.append(time.perf_counter() - start)
            results["persistent"][hops] = samples
            samples = []
            for _ in range(max(3, repeat // 20)):
                start = time.perf_counter()
                subprocess.run(peers.proxyjump(hops, ["true"]), check=True, capture_output=True)
                samples.append(time.perf_counter() - start)
            results["proxyjump"][hops] = samples
            stop_master = peers.persistent(hops, [])
            stop_master[-1:-1] = ["-O", "exit"]  # a control command goes before the destination
            subprocess.run(stop_master, capture_output=True)
    return results


def _true() -> int:
    return subprocess.run(["true"], check=False).returncode


def _ray_latency(repeat: int) -> dict[str, list[float]] | None:
    """Round trips of a Ray task running ``true`` (the job ``exec true`` does: start a process)
    and of a no-op task (Ray's floor), on a local Ray; None when Ray is not installed."""
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        return None
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        tasks = {"task running `true`": ray.remote(_true), "no-op task": ray.remote(lambda: None)}
        figures = {}
        for label, task in tasks.items():
            for _ in range(max(5, repeat // 10)):
                ray.get(task.remote())
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                ray.get(task.remote())
                samples.append(time.perf_counter() - start)
            figures[label] = samples
        return figures
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-") as tmp:
        path = Path(tmp) / "topology.yaml"
        path.write_text(TOPOLOGY)
        apply_topology(path)
        try:
            state = StateFile(state_dir_for(path), "bench").load()
            entry = state.nodes["a"]
            assert entry.url is not None
            ours = asyncio.run(_exec_latency(entry.url, entry.admin_token, args.repeat))
        finally:
            destroy_topology(path)
    print(f"exec true round trip, Python API, median of {args.repeat} (p10-p90), milliseconds")
    medians = []
    for hops, target in enumerate(TARGETS):
        median, low, high = _summary(ours[target])
        medians.append(median)
        print(
            f"  {hops} hop(s) a->{target}: {median * 1e3:7.3f} ({low * 1e3:.3f}-{high * 1e3:.3f})"
        )
    per_hop = (medians[-1] - medians[0]) / (len(medians) - 1)
    print(f"  added per hop: {per_hop * 1e3:.3f} ms (target <= 0.5 ms); direct target <= 3 ms")
    ray = _ray_latency(args.repeat)
    if ray is None:
        print("Ray peer skipped: ray not installed (pip install ray)")
    else:
        for label, samples in ray.items():
            ray_median = statistics.median(samples)
            print(
                f"Ray {label}: {ray_median * 1e3:.3f} ms "
                f"(ratio Ray / codebolt direct {ray_median / medians[0]:.1f}x)"
            )
    if not ssh_available():
        print(
            "ssh peer skipped: sshd/ssh/ssh-keygen not installed (apt-get install openssh-server)"
        )
        return
    peer = _ssh_latency(max(20, args.repeat // 4))
    print("ssh peer on the same machine, milliseconds (ratio = ssh / codebolt)")
    for hops in range(4):
        persistent = statistics.median(peer["persistent"][hops])
        jump = statistics.median(peer["proxyjump"][hops])
        mine = medians[hops]
        print(
            f"  {hops} hop(s): ssh persistent {persistent * 1e3:8.2f} ({persistent / mine:5.1f}x)"
            f"   ssh -J fresh {jump * 1e3:8.1f} ({jump / mine:6.1f}x)"
        )
    ssh_hop = (
        statistics.median(peer["persistent"][3]) - statistics.median(peer["persistent"][0])
    ) / 3
    print(f"  ssh persistent added per hop: {ssh_hop * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
