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
        ("a -> b", "none"),
        ("b -> c", "pull"),
        ("c -> a", "none"),
    ]


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
    edges = [
        Edge("b", "c", "e0", "push"),
        Edge("x", "a", "e1", "pull"),
        Edge("a", "b", "e2", "push"),
        Edge("c", "d", "e3", "none"),
    ]
    assert plan_transfers(edges) == [
        Transfer("x->a", "pull", "a", "x"),
        Transfer("a->b", "push", "a", "b"),
        Transfer("b->c", "push", "b", "c"),
    ]


def test_both_pushes_then_pulls_and_named_edges_are_checked() -> None:
    edges = [Edge("a", "b", "e0", "both"), Edge("b", "c", "e1", "none")]
    assert [(t.direction, t.source) for t in plan_transfers(edges, ["a -> b"])] == [
        ("push", "a"),
        ("pull", "b"),
    ]
    with pytest.raises(ConfigError, match="does not sync"):
        plan_transfers(edges, ["b->c"])
    with pytest.raises(ConfigError, match="no edge 'c->a'"):
        plan_transfers(edges, ["c->a"])
    assert plan_transfers([Edge("a", "b", "e0")]) == []


def test_each_transfer_is_asked_of_the_edges_sender() -> None:
    push = Transfer("a->b", "push", "a", "b")
    pull = Transfer("a->b", "pull", "b", "a")
    assert (push.sender, push.peer) == (pull.sender, pull.peer) == ("a", "b")


def test_only_a_node_that_does_not_know_sync_is_relayed_instead() -> None:
    """A node that predates ``sync`` refuses the frame at decode, as any unknown type: that
    refusal, and only it, sends the engine to the relayed path."""
    from codebolt_topo.engine.sync_relay import predates_sync
    from codebolt_topo.errors import ExecError, ProtocolError
    from codebolt_topo.wire.codec import decode

    with pytest.raises(ProtocolError) as unknown:
        decode('{"t": "sync-from-the-future", "id": "s"}')
    old_node = str(unknown.value).replace("'sync-from-the-future'", "'sync'")
    assert predates_sync(ExecError(old_node, code="bad-request"))
    assert not predates_sync(ExecError("node 'b' has no edge to 'a'", code="bad-request"))
    assert not predates_sync(ExecError(old_node, code="internal"))


def test_a_relayed_transfer_says_so_and_one_along_the_edge_reads_as_before() -> None:
    from codebolt_topo.engine.sync import EdgeSync, describe

    transfer = Transfer("a->b", "pull", "b", "a")
    along = EdgeSync(transfer, bytes=776, seconds=0.74, created=["t"])
    assert describe(along) == "a->b pull b => a: 776 bytes, 1 created (0.74 s)"
    relayed = EdgeSync(transfer, bytes=776, seconds=0.74, created=["t"], route="orchestrator")
    assert describe(relayed) == (
        "a->b pull b => a: 776 bytes, 1 created, relayed here (node 'a' predates node-to-node "
        "sync) (0.74 s)"
    )
