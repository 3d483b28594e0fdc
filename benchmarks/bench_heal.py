"""How fast a topology heals, and what watching it costs.

1. Time from ``kill -9`` of a middle node to the topology being all RUNNING again (the new node
   configured, its upstream re-pointed at it, and answering a heartbeat), with the default
   heartbeat (30 s) and a fast one (200 ms), on real local nodes. Also the time from SIGSTOP
   (a hang: the process stays, only heartbeats notice) to the same, with the fast heartbeat
   (with the default one it is suspect_after + fail_after by design: 100 s + 60 s).
2. CPU time of one reconciler pass (heartbeat round included) for 100 and 1,000 simulated nodes:
   the in-memory provider stands in for processes and heartbeats answer at once, so the figure is
   the reconciler's own cost (validate, observe, diff, decide).

Run: ``python benchmarks/bench_heal.py [--trials N]``. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.engine.runner import Engine
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.memory import MemoryProvider

CHAIN = "name: heal\n{heartbeat}nodes: {{a: {{}}, b: {{}}, c: {{}}}}\nedges: [a -> b -> c]\n"
FAST = "heartbeat: {interval: 200ms, timeout: 200ms, suspect_after: 800ms, fail_after: 1500ms}\n"


async def _answers(node: NodeState) -> bool:
    try:
        async with NodeClient.connect(node.url or "", node.admin_token, resume=False) as client:
            await asyncio.wait_for(client.info(), 1.0)
    except Exception:  # not answering yet
        return False
    return True


async def _time_to_heal(path: Path, sig: signal.Signals = signal.SIGKILL) -> float:
    stop = asyncio.Event()
    reconciler = Reconciler(path, backoff_base=0.2)
    watcher = asyncio.create_task(reconciler.run(stop))
    state_file = state_file_for(path, "heal")
    await asyncio.sleep(1.0)
    before = state_file.load()
    victim = before.nodes["b"].handle["pid"]
    start = time.monotonic()
    os.kill(victim, sig)
    try:
        while True:
            await asyncio.sleep(0.02)
            state = state_file.load()
            node = state.nodes.get("b")
            if (
                node
                and node.lifecycle is Lifecycle.RUNNING
                and node.handle.get("pid") != victim
                and node.runtime_hash
                and state.nodes["a"].generation > before.nodes["a"].generation
            ):
                observed = await Engine(state_file).refresh(state)
                if all(o.alive for o in observed.values()) and await _answers(node):
                    return time.monotonic() - start
    finally:
        if sig is signal.SIGSTOP:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        stop.set()
        await watcher


def heal_times(trials: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for label, heartbeat in (("default heartbeat (30 s)", ""), ("fast heartbeat (200 ms)", FAST)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "topology.yaml"
            path.write_text(CHAIN.format(heartbeat=heartbeat))
            apply_topology(path)
            try:
                results[label] = [asyncio.run(_time_to_heal(path)) for _ in range(trials)]
                if heartbeat:
                    results["hang (SIGSTOP), fast heartbeat"] = [
                        asyncio.run(_time_to_heal(path, signal.SIGSTOP)) for _ in range(trials)
                    ]
            finally:
                destroy_topology(path)
    return results


class _AnsweringProber(HeartbeatProber):
    """Every heartbeat answers at once: measures the reconciler, not the network."""

    async def probe(self, node: NodeState, timeout: float) -> str | None:
        return None


def _simulated(directory: Path, count: int) -> tuple[Path, MemoryProvider]:
    """A tree of ``count`` nodes (10 children each) recorded as running on the memory provider."""
    names = [f"n{i}" for i in range(count)]
    edges = [f"{names[(i - 1) // 10]} -> {names[i]}" for i in range(1, count)]
    path = directory / "topology.yaml"
    path.write_text(json.dumps({"name": "sim", "nodes": {n: {} for n in names}, "edges": edges}))
    validated = validate_file(path)
    state_file = state_file_for(path, "sim")
    state = State(topology="sim")
    provider = MemoryProvider(
        ProviderContext(topology="sim", lineage=state.lineage, runtime_dir=state_file.runtime_dir)
    )
    for desired in desired_nodes(validated).values():
        handle_id = len(provider.alive) + 1
        provider.alive[handle_id] = desired.name
        state.nodes[desired.name] = NodeState(
            name=desired.name,
            provider="local",
            lifecycle=Lifecycle.RUNNING,
            handle={"id": handle_id},
            host="127.0.0.1",
            port=20000 + handle_id,
            admin_token="simulated",
            launch=desired.launch_settings,
            launch_hash=desired.launch_hash,
            runtime_hash="simulated",
            wiring=json.loads(json.dumps(desired.wiring)),
        )
    with state_file.locked("bench"):
        state_file.save(state)
    return path, provider


def reconciler_cpu(count: int, passes: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        path, provider = _simulated(Path(tmp), count)
        reconciler = Reconciler(path, providers={"local": provider}, prober=_AnsweringProber())

        async def run() -> list[float]:
            samples = []
            for _ in range(passes):
                start = time.process_time()
                report = await reconciler.pass_once()
                samples.append(time.process_time() - start)
                assert not report.applied, report.applied
                reconciler.health = None  # every pass is a full heartbeat round
            return samples

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print("kill -9 (or SIGSTOP) of the middle node of a 3-node chain -> all RUNNING again (s)")
    for label, samples in heal_times(args.trials).items():
        shown = ", ".join(f"{s:.2f}" for s in samples)
        print(f"  {label:<32} median {statistics.median(samples):.2f}  ({shown})")
    print("reconciler CPU per pass with a full heartbeat round (simulated nodes, milliseconds)")
    for count in (100, 1000):
        samples = reconciler_cpu(count, passes=10)
        print(
            f"  {count:>5} nodes: median {statistics.median(samples) * 1e3:8.1f}"
            f"  min {min(samples) * 1e3:8.1f}  max {max(samples) * 1e3:8.1f}"
        )


if __name__ == "__main__":
    main()
