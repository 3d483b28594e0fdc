"""Scale of the pure core: validate + plan of a 10,000-node, 20,000-edge topology; apply of 20
local nodes to RUNNING.

Run: ``python benchmarks/bench_scale.py [--nodes 10000] [--edges 20000] [--apply 20]``.

The big topology is a binary tree over every node plus random extra edges (seeded), written as
one ``a -> b`` line per edge: routes are not trivial (most nodes reach thousands of others), and
the file is ~30,000 YAML lines. Figures: ``codebolt validate`` and ``codebolt plan`` wall time,
and in-process phases (YAML parse + model, graph checks, desired state + diff, one node's route
table); the same graph written compactly (replicas and an edge to a replica group) separates
the YAML cost from the core's. Then ``apply`` of a 20-node chain on the local provider, from
nothing to every node RUNNING and configured, and its ``destroy``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_note

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
    return ("version: 1\nname: compact\nnodes:\n  hub: {count: 2}\n"
            + "".join(f"  g{i}: {{count: {n}}}\n" for i, n in enumerate(groups))
            + "edges:\n" + "".join(f"  - hub -> g{i}\n" for i in range(len(groups))))


def _timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
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
    path.write_text("name: apply20\nnodes:\n" + "".join(f"  {n}: {{}}\n" for n in names)
                    + "edges:\n  - linear: [" + ", ".join(names) + "]\n")
    start = time.perf_counter()
    _, ok = apply_topology(path)
    applied = time.perf_counter() - start
    if not ok:
        raise SystemExit("apply failed")
    start = time.perf_counter()
    destroy_topology(path)
    return applied, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=20_000)
    parser.add_argument("--apply", type=int, default=20)
    args = parser.parse_args()
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
        print(f"  codebolt validate {validate:6.2f} s   codebolt plan {plan:6.2f} s   "
              "(target: validate + plan <= 2 s)")
        for label, seconds in _phases(big).items():
            print(f"    {label:38s} {seconds:6.2f} s")
        print(f"same size, compact file ({compact.read_text().count(chr(10))} lines: replicas, "
              "an edge to a replica group)")
        validate = _timed([CODEBOLT, "validate", str(compact)], root)
        plan = _timed([CODEBOLT, "plan", str(compact)], root)
        print(f"  codebolt validate {validate:6.2f} s   codebolt plan {plan:6.2f} s")
        for label, seconds in _phases(compact).items():
            print(f"    {label:38s} {seconds:6.2f} s")
        applied, destroyed = _apply(args.apply, root)
        print(f"apply {args.apply} local nodes (chain) to RUNNING: {applied:.2f} s (target <= 5 s);"
              f" destroy {destroyed:.2f} s")


if __name__ == "__main__":
    main()
