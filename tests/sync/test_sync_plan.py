"""Pure parts of sync: the ``sync`` edge field, and which transfers run in which order."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebolt_topo.engine.sync import Transfer, plan_transfers
from codebolt_topo.errors import ConfigError
from codebolt_topo.plan.shapes import Edge
from codebolt_topo.plan.validate import validate_file


def _edges(tmp_path: Path, edges: str) -> list[Edge]:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nnodes: {{a: {{}}, b: {{}}, c: {{}}}}\nedges:\n{edges}")
    return list(validate_file(path).edges)


def test_explicit_edges_carry_sync_and_shorthand_defaults_to_none(tmp_path: Path) -> None:
    edges = _edges(tmp_path, "  - a -> b\n  - {from: b, to: c, sync: pull}\n  - linear: [c, a]\n")
    assert [(str(e), e.sync) for e in edges] == [
        ("a -> b", "none"), ("b -> c", "pull"), ("c -> a", "none")]


def test_repeated_edges_merge_their_sync(tmp_path: Path) -> None:
    edges = _edges(
        tmp_path,
        "  - a -> b\n  - {from: a, to: b, sync: push}\n  - {from: a, to: b, sync: pull}\n",
    )
    assert [(str(e), e.sync, e.field) for e in edges] == [("a -> b", "both", "edges[0]")]


def test_bad_sync_value_is_a_schema_error(tmp_path: Path) -> None:
    from codebolt_topo.errors import TopoError

    with pytest.raises(TopoError, match="sync"):
        _edges(tmp_path, "  - {from: a, to: b, sync: sideways}\n")


def test_transfers_follow_the_chain_whatever_the_declaration_order() -> None:
    edges = [Edge("b", "c", "e0", "push"), Edge("x", "a", "e1", "pull"),
             Edge("a", "b", "e2", "push"), Edge("c", "d", "e3", "none")]
    assert plan_transfers(edges) == [
        Transfer("x->a", "pull", "a", "x"),
        Transfer("a->b", "push", "a", "b"),
        Transfer("b->c", "push", "b", "c"),
    ]


def test_both_pushes_then_pulls_and_named_edges_are_checked() -> None:
    edges = [Edge("a", "b", "e0", "both"), Edge("b", "c", "e1", "none")]
    assert [(t.direction, t.source) for t in plan_transfers(edges, ["a -> b"])] == [
        ("push", "a"), ("pull", "b")]
    with pytest.raises(ConfigError, match="does not sync"):
        plan_transfers(edges, ["b->c"])
    with pytest.raises(ConfigError, match="no edge 'c->a'"):
        plan_transfers(edges, ["c->a"])
    assert plan_transfers([Edge("a", "b", "e0")]) == []
