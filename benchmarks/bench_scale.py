"""Scale of the pure core: validate + plan of a 10,000-node, 20,000-edge topology; apply of 20
local nodes to RUNNING; density: hundreds of local nodes on this machine.

Run: ``python benchmarks/bench_scale.py [--nodes 10000] [--edges 20000] [--apply 20]
[--density 500] [--fanout 200]``.

The big topology is a binary tree over every node plus random extra edges (seeded), written as
one ``a -> b`` line per edge: routes are not trivial (most nodes reach thousands of others), and
the file is ~30,000 YAML lines. Figures: ``codebolt validate`` and ``codebolt plan`` wall time,
and in-process phases (YAML parse + model, graph checks, desired state + diff, one node's route
table); the same graph written compactly (replicas and an edge to a replica group) separates
the YAML cost from the core's. Then ``apply`` of a 20-node chain on the local provider, from
nothing to every node RUNNING and configured, and its ``destroy``.

Density (issue 18): a hub with an edge to each of N-1 workers on the local provider: apply to
RUNNING, the daemons' memory (USS: pages a daemon holds alone; PSS: its share of the pages it
shares with the zygote and its siblings), ``codebolt status`` of the N nodes as a fresh process
off a terminal, cold (``CODEBOLT_BROKER=0``) and through the warm broker, ``exec true`` on
``--fanout`` workers at once through the hub until every result is back (Python API, next to
the same workers one after the other) and ``codebolt exec --all`` through the warm broker, then
destroy. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_ms, load_note, summary

CODEBOLT = str(Path(sys.executable).with_name("codebolt"))


def big_topology(nodes: int, edges: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    pairs = {((i - 1) // 2, i) for i in range(1, nodes)}
    while len(pairs) < edges:
        a, b = rng.randrange(nodes), rng.randrange(nodes)
        if a != b:
            pairs.add((a, b))
    lines = ["version: 1", "name: scale", "nodes:"]
    lines += [f"  n{i}: {{}}" for i in range(nodes)]
    lines.append("edges:")
    lines += [f"  - n{a} -> n{b}" for a, b in sorted(pairs)]
    return "\n".join(lines) + "\n"


def compact_topology(nodes: int) -> str:
    """``nodes`` nodes and 2 x (nodes - 2) edges in a few lines: two hubs feed replica groups
    (a group has at most 1,000 replicas)."""
    workers, groups = nodes - 2, []
    while workers > 0:
        groups.append(min(1000, workers))
        workers -= groups[-1]
    return (
        "version: 1\nname: compact\nnodes:\n  hub: {count: 2}\n"
        + "".join(f"  g{i}: {{count: {n}}}\n" for i, n in enumerate(groups))
        + "edges:\n"
        + "".join(f"  - hub -> g{i}\n" for i in range(len(groups)))
    )


def _timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def _phases(path: Path) -> dict[str, float]:
    """What ``codebolt plan`` does in-process, phase by phase (the file is parsed once)."""
    from codebolt_topo.model.loader import load_topology
    from codebolt_topo.model.state import State
    from codebolt_topo.plan.desired import desired_nodes
    from codebolt_topo.plan.diff import diff
    from codebolt_topo.plan.graph import TopologyGraph
    from codebolt_topo.plan.replicas import expand_replicas
    from codebolt_topo.plan.shapes import expand_edges
    from codebolt_topo.plan.validate import ValidatedTopology, check_graph

    out: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_topology(path)
    out["YAML parse + model (loader)"] = time.perf_counter() - start
    start = time.perf_counter()
    edges = expand_edges(loaded.topology)
    graph = TopologyGraph(loaded.topology, edges)
    if check_graph(loaded, edges, graph):
        raise SystemExit("the generated topology is invalid")
    expanded, edges, _ = expand_replicas(loaded, edges)
    if expanded is not loaded:
        graph = TopologyGraph(expanded.topology, edges)
    validated = ValidatedTopology(expanded, graph, tuple(edges))
    out["edges, graph, checks, replicas"] = time.perf_counter() - start
    start = time.perf_counter()
    desired = desired_nodes(validated)
    plan = diff(desired, State(topology=validated.topology.name), {})
    out[f"desired state + diff ({len(plan.actions)} actions)"] = time.perf_counter() - start
    first = next(iter(desired.values()))
    start = time.perf_counter()
    routes = len(first.routes)
    out[f"routes of {first.name} ({routes} destinations)"] = time.perf_counter() - start
    return out


def _apply(count: int, root: Path) -> tuple[float, float]:
    from codebolt_topo.engine.operations import apply_topology, destroy_topology

    path = root / "apply" / "topology.yaml"
    path.parent.mkdir()
    names = [f"n{i}" for i in range(count)]
    path.write_text(
        "name: apply20\nnodes:\n"
        + "".join(f"  {n}: {{}}\n" for n in names)
        + "edges:\n  - linear: ["
        + ", ".join(names)
        + "]\n"
    )
    start = time.perf_counter()
    _, ok = apply_topology(path)
    applied = time.perf_counter() - start
    if not ok:
        raise SystemExit("apply failed")
    start = time.perf_counter()
    destroy_topology(path)
    return applied, time.perf_counter() - start


def _memory(pid: int) -> tuple[float, float]:
    """(USS, PSS) of ``pid`` in MiB, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return uss / 1024, fields.get("Pss", 0) / 1024


async def _fanout(url: str, token: str, targets: list[str], repeat: int) -> tuple[list[float], ...]:
    from codebolt_topo.client import Exit, NodeClient

    async def once(names: list[str]) -> None:
        result = await (await client.exec(names, argv=["true"])).result()
        exits = [n.exit for n in result.nodes.values() if isinstance(n.exit, Exit)]
        if len(exits) != len(names) or any(e.code != 0 for e in exits):
            raise SystemExit(f"fan-out to {len(names)} nodes failed: {result.failures}")

    together, one_by_one = [], []
    async with NodeClient.connect(url, token) as client:
        await once(targets)  # the hub opens its links
        for _ in range(repeat):
            start = time.perf_counter()
            await once(targets)
            together.append(time.perf_counter() - start)
        for _ in range(max(1, repeat // 5)):
            start = time.perf_counter()
            for target in targets:
                await once([target])
            one_by_one.append(time.perf_counter() - start)
    return together, one_by_one


def _density(count: int, fanout: int, root: Path) -> None:
    from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for

    path = root / "density" / "topology.yaml"
    path.parent.mkdir()
    workers = [f"w{i}" for i in range(count - 1)]
    path.write_text(
        f"name: density{count}\nnodes:\n  hub: {{}}\n"
        + "".join(f"  {w}: {{}}\n" for w in workers)
        + "edges:\n"
        + "".join(f"  - hub -> {w}\n" for w in workers)
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")  # as installed: bytecode cached
    print(f"density: {count} local nodes (hub -> {count - 1} workers), {load_note()}")
    start = time.perf_counter()
    _, ok = apply_topology(path)
    applied = time.perf_counter() - start
    try:
        state = state_file_for(path, f"density{count}").load()
        running = sum(1 for node in state.nodes.values() if node.lifecycle.value == "RUNNING")
        print(
            f"  apply {count} to RUNNING: {applied:6.2f} s ({running} running, "
            f"{'ok' if ok else 'FAILED'}; target: no failure, 200 nodes <= 20 s)   "
            f"load {os.getloadavg()[0]:.2f}"
        )
        memory = [_memory(int(node.handle["pid"])) for node in state.nodes.values()]
        uss = statistics.median(m[0] for m in memory)
        pss = statistics.median(m[1] for m in memory)
        print(
            f"  idle daemon memory, median of {len(memory)}: USS {uss:.1f} MiB, PSS {pss:.1f} MiB"
            f" (all daemons together: PSS {sum(m[1] for m in memory):.0f} MiB)"
        )
        argv = [CODEBOLT, "status", str(path)]
        cold = [_timed(argv, root, {**env, "CODEBOLT_BROKER": "0"}) for _ in range(3)]
        print(
            f"  codebolt status of {count}, fresh process, cold (no broker): {fmt_ms(cold)}"
            f"   load {os.getloadavg()[0]:.2f}"
        )
        _timed(argv, root, env)  # starts the broker (cli/broker.py)
        time.sleep(2.0)
        opened = _timed(argv, root, env)  # its first status opens the heartbeat connections
        warm = [_timed(argv, root, env) for _ in range(5)]
        print(
            f"  codebolt status of {count}, fresh process, warm broker: {fmt_ms(warm)} (the "
            f"first, opening the connections, {opened * 1e3:.0f} ms)   target <= 1000 ms   "
            f"load {os.getloadavg()[0]:.2f}"
        )
        hub = state.nodes["hub"]
        assert hub.url is not None
        together, one_by_one = asyncio.run(_fanout(hub.url, hub.admin_token, workers[:fanout], 10))
        ratio = summary(one_by_one)[0] / summary(together)[0]
        print(
            f"  exec true on {fanout} workers at once through the hub, all results back: "
            f"{fmt_ms(together)}   one by one {fmt_ms(one_by_one)} ({ratio:.1f}x)   "
            f"target <= 250 ms   load {os.getloadavg()[0]:.2f}"
        )
        argv = [CODEBOLT, "exec", str(path), "--all", "--from", "hub", "--", "true"]
        cli, failed = [], []
        for _ in range(6):  # the status above started the broker: each goes through it
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, env=env, text=True)
            cli.append(time.perf_counter() - start)
            if done.returncode != 0:
                failed.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        print(
            f"  codebolt exec --all -- true ({count} nodes, warm broker): {fmt_ms(cli[1:])} "
            f"(the first {cli[0] * 1e3:.0f} ms)"
            + (f"   FAILED {len(failed)}: {failed[0]}" if failed else "")
        )
    finally:
        start = time.perf_counter()
        destroy_topology(path)
        print(
            f"  destroy {count}: {time.perf_counter() - start:6.2f} s   target <= 10 s   "
            f"load {os.getloadavg()[0]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=20_000)
    parser.add_argument("--apply", type=int, default=20)
    parser.add_argument("--density", type=int, default=500, help="0: skip")
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--only-density", action="store_true")
    args = parser.parse_args()
    if args.only_density:
        with tempfile.TemporaryDirectory(prefix="codebolt-bench-scale-") as tmp:
            _density(args.density, args.fanout, Path(tmp))
        return
    print(f"scale, {load_note()}")
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-scale-") as tmp:
        root = Path(tmp)
        (root / "big").mkdir()
        big = root / "big" / "topology.yaml"
        big.write_text(big_topology(args.nodes, args.edges))
        (root / "compact").mkdir()
        compact = root / "compact" / "topology.yaml"
        compact.write_text(compact_topology(args.nodes))
        lines = big.read_text().count("\n")
        print(f"{args.nodes} nodes, {args.edges} edges, {lines} YAML lines (one edge per line)")
        validate = _timed([CODEBOLT, "validate", str(big)], root)
        plan = _timed([CODEBOLT, "plan", str(big)], root)
        print(
            f"  codebolt validate {validate:6.2f} s   codebolt plan {plan:6.2f} s   "
            "(target: validate + plan <= 2 s)"
        )
        for label, seconds in _phases(big).items():
            print(f"    {label:38s} {seconds:6.2f} s")
        print(
            f"same size, compact file ({compact.read_text().count(chr(10))} lines: replicas, "
            "an edge to a replica group)"
        )
        validate = _timed([CODEBOLT, "validate", str(compact)], root)
        plan = _timed([CODEBOLT, "plan", str(compact)], root)
        print(f"  codebolt validate {validate:6.2f} s   codebolt plan {plan:6.2f} s")
        for label, seconds in _phases(compact).items():
            print(f"    {label:38s} {seconds:6.2f} s")
        applied, destroyed = _apply(args.apply, root)
        print(
            f"apply {args.apply} local nodes (chain) to RUNNING: {applied:.2f} s (target <= 5 s);"
            f" destroy {destroyed:.2f} s"
        )
        if args.density:
            _density(args.density, min(args.fanout, args.density - 1), root)


if __name__ == "__main__":
    main()
