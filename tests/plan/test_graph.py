"""Graph queries: entries, receivers, routes (loop-free) and the three renderings."""

from __future__ import annotations

from typing import Any

import pytest

from codebolt_topo.model.topology import Topology
from codebolt_topo.plan.graph import TopologyGraph
from codebolt_topo.plan.shapes import expand_edges


def graph(*edges: Any, nodes: str = "abcdefg", entry: str | None = None) -> TopologyGraph:
    topology = Topology.model_validate({
        "name": "t", "nodes": {name: {} for name in nodes}, "edges": list(edges), "entry": entry,
    })
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
    assert routes["a"] == {"b": ["b"], "c": ["c"], "d": ["b"], "e": ["b"], "f": ["c"],
                           "g": ["c"]}
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
            assert all(g.hops(hop, dest) == g.hops(source, dest) - 1  # type: ignore[operator]
                       for hop in hops)
    _walk_all(g, routes)


def test_routes_with_fallback_append_other_ways_round() -> None:
    g = graph("a <-> b <-> c <-> d <-> a", nodes="abcd")
    assert g.routes()["a"]["b"] == ["b"]
    assert g.routes(fallback=True)["a"]["b"] == ["b", "d"]
    assert g.routes(fallback=True)["a"]["c"] == ["b", "d"]
    assert graph(LINEAR, nodes="abcd").routes(fallback=True)["a"] == {
        "b": ["b"], "c": ["b"], "d": ["b"],
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
