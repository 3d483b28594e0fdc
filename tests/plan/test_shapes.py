"""Each edges form expands to the directed edges it means, with the field that produced it."""

from __future__ import annotations

from typing import Any

import pytest

from codebolt_topo.model.topology import Topology
from codebolt_topo.plan.shapes import Edge, Mention, expand_edges, node_mentions, parse_shorthand


def topology(*edges: Any, nodes: str = "abcdefg") -> Topology:
    return Topology.model_validate(
        {"name": "t", "nodes": {name: {} for name in nodes}, "edges": list(edges)}
    )


def pairs(*edges: Any) -> list[str]:
    return [str(edge) for edge in expand_edges(topology(*edges))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a -> b", [("a", "b")]),
        ("a<->b", [("a", "b"), ("b", "a")]),
        (" a -> b -> c ", [("a", "b"), ("b", "c")]),
        ("a -> b <-> c", [("a", "b"), ("b", "c"), ("c", "b")]),
    ],
)
def test_parse_shorthand(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_shorthand(text) == expected


def test_shorthand_and_explicit_edges_keep_their_field() -> None:
    assert expand_edges(topology("a -> b -> c", {"from": "c", "to": "d"})) == [
        Edge("a", "b", "edges[0]"),
        Edge("b", "c", "edges[0]"),
        Edge("c", "d", "edges[1]"),
    ]


def test_linear() -> None:
    edges = expand_edges(topology({"linear": ["a", "b", "c", "d"]}))
    assert [str(e) for e in edges] == ["a -> b", "b -> c", "c -> d"]
    assert {e.field for e in edges} == {"edges[0].linear"}


def test_fan_out() -> None:
    assert pairs({"fan-out": {"root": "a", "leaves": ["b", "c", "d"]}}) == [
        "a -> b",
        "a -> c",
        "a -> d",
    ]


def test_nested_tree() -> None:
    assert pairs({"tree": {"a": {"b": ["d", "e"], "c": ["f", "g"]}}}) == [
        "a -> b",
        "a -> c",
        "b -> d",
        "b -> e",
        "c -> f",
        "c -> g",
    ]


def test_tree_null_and_empty_children_are_leaves() -> None:
    assert pairs({"tree": {"a": {"b": None, "c": [], "d": {}}, "e": None}}) == [
        "a -> b",
        "a -> c",
        "a -> d",
    ]


def test_mesh_is_every_ordered_pair() -> None:
    assert pairs({"mesh": ["a", "b", "c"]}) == [
        "a -> b",
        "a -> c",
        "b -> a",
        "b -> c",
        "c -> a",
        "c -> b",
    ]


def test_hub() -> None:
    assert pairs({"hub": {"hub": "a", "inbound": ["b", "c"], "outbound": ["d"]}}) == [
        "b -> a",
        "c -> a",
        "a -> d",
    ]


def test_duplicates_merge_keeping_the_first_field() -> None:
    edges = expand_edges(topology("a -> b", {"linear": ["a", "b", "c"]}, "a <-> b"))
    assert edges == [
        Edge("a", "b", "edges[0]"),
        Edge("b", "c", "edges[1].linear"),
        Edge("b", "a", "edges[2]"),
    ]


def test_mentions_point_at_each_written_name() -> None:
    mentions = node_mentions(
        topology(
            "a -> b",
            {"from": "a", "to": "c"},
            {"fan-out": {"root": "a", "leaves": ["d"]}},
            {"tree": {"a": {"b": ["e"]}}},
            {"hub": {"hub": "a", "inbound": ["f"], "outbound": ["g"]}},
            {"mesh": ["a", "b"]},
        )
    )
    assert mentions == [
        Mention("a", "edges[0]"),
        Mention("b", "edges[0]"),
        Mention("a", "edges[1].from"),
        Mention("c", "edges[1].to"),
        Mention("a", "edges[2].fan-out.root"),
        Mention("d", "edges[2].fan-out.leaves[0]"),
        Mention("a", "edges[3].tree.a", key=True),
        Mention("b", "edges[3].tree.a.b", key=True),
        Mention("e", "edges[3].tree.a.b[0]"),
        Mention("a", "edges[4].hub.hub"),
        Mention("f", "edges[4].hub.inbound[0]"),
        Mention("g", "edges[4].hub.outbound[0]"),
        Mention("a", "edges[5].mesh[0]"),
        Mention("b", "edges[5].mesh[1]"),
    ]
