"""Graph queries: entries, receivers, routes (loop-free) and the three renderings."""

from __future__ import annotations

from typing import Any

import pytest

from codebolt_topo.model.topology import Topology
from codebolt_topo.plan.graph import TopologyGraph
from codebolt_topo.plan.shapes import expand_edges


def graph(*edges: Any, nodes: str = "abcdefg", entry: str | None = None) -> TopologyGraph:
    topology = Topology.model_validate(
        {
            "name": "t",
            "nodes": {name: {} for name in nodes},
            "edges": list(edges),
            "entry": entry,
        }
    )
    return TopologyGraph(topology, expand_edges(topology))


LINEAR = {"linear": ["a", "b", "c", "d"]}
TREE = {"tree": {"a": {"b": ["d", "e"], "c": ["f", "g"]}}}
MESH = {"mesh": ["a", "b", "c", "d"]}


def test_unknown_nodes_and_self_loops_are_left_out() -> None:
    g = graph("a -> b", "a -> zz", "c -> c", nodes="abc")
    assert g.edges() == [("a", "b")]
    assert g.nodes == ["a", "b", "c"]


def test_entries_are_sources_in_declaration_order() -> None:
    assert graph("c -> a", "b -> a", nodes="abc").entries() == ["b", "c"]


def test_declared_entry_wins() -> None:
    assert graph("a -> b", nodes="ab", entry="b").entries() == ["b"]


def test_entries_of_a_source_cycle_take_its_first_declared_node() -> None:
    assert graph("c <-> b", "b -> a", nodes="dabc").entries() == ["d", "b"]


def test_receivers_and_successors() -> None:
    g = graph(TREE)
    assert g.receivers() == ["b", "c", "d", "e", "f", "g"]
    assert g.successors("a") == ["b", "c"]
    assert g.predecessors("d") == ["b"]


def test_routes_on_a_chain() -> None:
    routes = graph(LINEAR, nodes="abcd").routes()
    assert routes == {
        "a": {"b": ["b"], "c": ["b"], "d": ["b"]},
        "b": {"c": ["c"], "d": ["c"]},
        "c": {"d": ["d"]},
        "d": {},
    }


def test_routes_on_a_tree() -> None:
    routes = graph(TREE).routes()
    assert routes["a"] == {"b": ["b"], "c": ["c"], "d": ["b"], "e": ["b"], "f": ["c"], "g": ["c"]}
    assert routes["b"] == {"d": ["d"], "e": ["e"]}
    assert routes["d"] == {}


def test_routes_prefer_shortest_paths_in_declaration_order() -> None:
    routes = graph("a -> c -> d", "a -> b -> d", "a -> d -> e", nodes="abcde").routes()
    assert routes["a"]["e"] == ["d"]
    routes = graph("a -> c -> e", "a -> b -> e", nodes="abce").routes()
    assert routes["a"]["e"] == ["b", "c"]


def _walk_all(g: TopologyGraph, routes: dict[str, dict[str, list[str]]]) -> None:
    for source, table in routes.items():
        for dest in table:
            node, seen = source, {source}
            while node != dest:
                hop = routes[node][dest][0]
                assert g.hops(hop, dest) < g.hops(node, dest)  # type: ignore[operator]
                assert hop not in seen
                seen.add(hop)
                node = hop


@pytest.mark.parametrize("edges", [(MESH,), ("a <-> b <-> c <-> d <-> a",), (LINEAR, "d -> a")])
def test_routes_in_cyclic_graphs_always_get_closer(edges: tuple[Any, ...]) -> None:
    g = graph(*edges, nodes="abcd")
    routes = g.routes()
    for source, table in routes.items():
        for dest, hops in table.items():
            assert hops
            assert all(
                g.hops(hop, dest) == g.hops(source, dest) - 1  # type: ignore[operator]
                for hop in hops
            )
    _walk_all(g, routes)


def test_routes_with_fallback_append_other_ways_round() -> None:
    g = graph("a <-> b <-> c <-> d <-> a", nodes="abcd")
    assert g.routes()["a"]["b"] == ["b"]
    assert g.routes(fallback=True)["a"]["b"] == ["b", "d"]
    assert g.routes(fallback=True)["a"]["c"] == ["b", "d"]
    assert graph(LINEAR, nodes="abcd").routes(fallback=True)["a"] == {
        "b": ["b"],
        "c": ["b"],
        "d": ["b"],
    }


def test_farthest_and_hops() -> None:
    g = graph(TREE)
    assert g.farthest_from("a") == "d"
    assert g.farthest_from("d") is None
    assert g.hops("a", "g") == 2
    assert g.hops("g", "a") is None


def test_ascii_tree() -> None:
    assert graph(TREE).to_ascii() == (
        "a\n|-- b\n|   |-- d\n|   `-- e\n`-- c\n    |-- f\n    `-- g\n"
    )


def test_ascii_marks_repeats_and_shows_unreached_nodes() -> None:
    assert graph("a -> b", "c -> b", nodes="abcd", entry="a").to_ascii() == (
        "a\n`-- b\nc\n`-- b (see above)\nd\n"
    )


def test_mermaid_pairs_opposite_edges() -> None:
    assert graph("a <-> b", "b -> c", nodes="abc").to_mermaid() == (
        'flowchart LR\n    n0["a"]\n    n1["b"]\n    n2["c"]\n    n0 <--> n1\n    n1 --> n2\n'
    )


def test_dot() -> None:
    assert graph("a <-> b", "b -> c", nodes="abc").to_dot() == (
        'digraph "t" {\n    rankdir=LR;\n    "a";\n    "b";\n    "c";\n'
        '    "a" -> "b" [dir=both];\n    "b" -> "c";\n}\n'
    )


def _reference_routes(g: TopologyGraph) -> dict[str, dict[str, list[str]]]:
    """Routes as networkx all-pairs distances define them (the former implementation)."""
    import networkx as nx

    distance = dict(nx.all_pairs_shortest_path_length(g.graph))
    return {
        node: {
            dest: [
                hop
                for hop in g.successors(node)
                if distance[hop].get(dest) == distance[node][dest] - 1
            ]
            for dest in g.nodes
            if dest in distance[node] and dest != node
        }
        for node in g.nodes
    }


@pytest.mark.parametrize("seed", range(20))
def test_routes_match_all_pairs_shortest_paths_on_random_graphs(seed: int) -> None:
    import random

    rng = random.Random(seed)
    names = [f"n{i}" for i in range(rng.randint(2, 25))]
    edges = [f"{rng.choice(names)} -> {rng.choice(names)}" for _ in range(rng.randint(1, 60))]
    edges = [e for e in edges if e.split(" -> ")[0] != e.split(" -> ")[1]] or ["n0 -> n1"]
    topology = Topology.model_validate(
        {"name": "t", "nodes": {n: {} for n in names}, "edges": edges}
    )
    g = TopologyGraph(topology, expand_edges(topology))
    assert g.routes() == _reference_routes(g)
    import networkx as nx

    condensed = nx.condensation(g.graph)
    expected = sorted(
        (
            min(condensed.nodes[c]["members"], key=g.order.__getitem__)
            for c in condensed
            if condensed.in_degree(c) == 0
        ),
        key=g.order.__getitem__,
    )
    assert g.entries() == expected
    for node in names[:3]:
        assert g.reachable_from(node) == g._sorted(nx.descendants(g.graph, node))


def test_validate_and_plan_never_import_networkx(tmp_path: Any) -> None:
    import subprocess
    import sys

    path = tmp_path / "topology.yaml"
    path.write_text("name: t\nnodes: {a: {}, b: {}, c: {}}\nedges: [{linear: [a, b, c]}]\n")
    code = (
        "import sys; from pathlib import Path; from codebolt_topo.plan.validate import "
        "validate_file; from codebolt_topo.plan.desired import desired_nodes; "
        f"d = desired_nodes(validate_file(Path({str(path)!r}))); d['a'].routes; "
        "print('networkx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(10))
def test_lazy_wiring_equals_the_eager_computation(seed: int, tmp_path: Any) -> None:
    import random

    from codebolt_topo.node.security.principals import upstream_sets
    from codebolt_topo.plan.desired import desired_nodes
    from codebolt_topo.plan.validate import validate_file

    rng = random.Random(seed)
    names = [f"n{i}" for i in range(rng.randint(3, 15))]
    pairs = {(rng.choice(names), rng.choice(names)) for _ in range(rng.randint(2, 30))}
    edges = [f"{a} -> {b}" for a, b in sorted(pairs) if a != b] or ["n0 -> n1"]
    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: t\nnodes: {" + ", ".join(f"{n}: {{}}" for n in names) + "}\n"
        "edges: [" + ", ".join(f'"{e}"' for e in edges) + "]\n"
    )
    validated = validate_file(path)
    desired = desired_nodes(validated)
    eager = upstream_sets(validated.graph.edges())
    every = validated.graph.routes()
    for name, node in desired.items():
        assert node.upstream == eager.get(name, {})
        assert node.routes == every[name]
        assert list(node.wiring["routes"]) == sorted(every[name])
