"""Expand the ``edges`` list (shorthands and shape generators) into plain directed edges.

Users describe wiring at the level they think in (a chain, a fan-out, a tree); the planner only
understands ``source -> target``. Every expanded :class:`Edge` keeps the path of the item that
produced it, and :func:`node_mentions` keeps the path of every node name written in ``edges``,
so a graph problem found much later still points at the right line of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from codebolt_topo.model.source import FieldPath, format_path
from codebolt_topo.model.topology import (
    DialMode,
    EdgeSpec,
    FanOutShape,
    HubShape,
    LinearShape,
    MeshShape,
    SyncMode,
    Topology,
    TreeShape,
)

__all__ = ["Edge", "Mention", "dial_conflicts", "expand_edges", "node_mentions", "parse_shorthand"]

_ARROW = re.compile(r"\s*(<->|->)\s*")


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` may send work to ``target``; ``field`` is the edges item that said so.

    ``sync`` is the narrative sync an explicit ``{from, to, sync}`` item declared; shorthand and
    shape edges carry ``none``. ``dial`` is which end opens the edge's connection (``auto``
    unless an explicit item said; the engine resolves ``auto`` where it knows both ends).
    """

    source: str
    target: str
    field: str
    sync: SyncMode = "none"
    dial: DialMode = "auto"

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True, slots=True)
class Mention:
    """A node name written somewhere in ``edges``; ``key`` when it was written as a mapping key."""

    name: str
    field: str
    key: bool = False


def parse_shorthand(text: str) -> list[tuple[str, str]]:
    """``'a -> b <-> c'`` → ``[(a, b), (b, c), (c, b)]``. The text is assumed valid."""
    parts = _ARROW.split(text.strip())
    pairs: list[tuple[str, str]] = []
    for index in range(0, len(parts) - 2, 2):
        left, arrow, right = parts[index : index + 3]
        pairs.append((left, right))
        if arrow == "<->":
            pairs.append((right, left))
    return pairs


def expand_edges(topology: Topology) -> list[Edge]:
    """Every directed edge, in the order written; repeats keep the field of their first origin.

    A repeat still adds its ``sync``: ``a -> b`` then ``{from: a, to: b, sync: push}`` syncs, and
    ``push`` plus ``pull`` on one edge is ``both``. A repeat's explicit ``dial`` replaces
    ``auto`` (two explicit ones that differ are a validate error: :func:`dial_conflicts`).
    """
    seen: dict[tuple[str, str], Edge] = {}
    for index, item in enumerate(topology.edges):
        sync: SyncMode = item.sync if isinstance(item, EdgeSpec) else "none"
        dial: DialMode = item.dial if isinstance(item, EdgeSpec) else "auto"
        for source, target, field in _expand_item(item, ("edges", index)):
            edge = seen.setdefault(
                (source, target), Edge(source, target, format_path(field), sync, dial)
            )
            if edge.sync != sync:
                edge = seen[(source, target)] = replace(edge, sync=_merge_sync(edge.sync, sync))
            if edge.dial == "auto" and dial != "auto":
                seen[(source, target)] = replace(edge, dial=dial)
    return list(seen.values())


def dial_conflicts(topology: Topology) -> list[tuple[str, str]]:
    """(field of the ``dial`` setting, message) for each explicit edge item whose ``dial``
    contradicts an earlier explicit item of the same edge."""
    first: dict[tuple[str, str], tuple[DialMode, int]] = {}
    conflicts: list[tuple[str, str]] = []
    for index, item in enumerate(topology.edges):
        if not isinstance(item, EdgeSpec) or item.dial == "auto":
            continue
        pair = (item.from_, item.to)
        earlier = first.setdefault(pair, (item.dial, index))
        if earlier[0] != item.dial:
            conflicts.append(
                (
                    format_path(("edges", index, "dial")),
                    f"edge {item.from_} -> {item.to} says dial: {item.dial}, but "
                    f"edges[{earlier[1]}] says dial: {earlier[0]}; hint: keep one",
                )
            )
    return conflicts


def _merge_sync(first: SyncMode, second: SyncMode) -> SyncMode:
    if first == "none" or first == second:
        return second
    if second == "none":
        return first
    return "both"


def node_mentions(topology: Topology) -> list[Mention]:
    """Every node name written in ``edges``, with the exact path where it was written."""
    mentions: list[Mention] = []
    for index, item in enumerate(topology.edges):
        base: FieldPath = ("edges", index)
        if isinstance(item, str):
            names = _ARROW.split(item.strip())[::2]
            mentions += [Mention(name, format_path(base)) for name in names]
        elif isinstance(item, EdgeSpec):
            mentions += [
                Mention(item.from_, format_path((*base, "from"))),
                Mention(item.to, format_path((*base, "to"))),
            ]
        elif isinstance(item, LinearShape | MeshShape):
            key = "linear" if isinstance(item, LinearShape) else "mesh"
            names = item.linear if isinstance(item, LinearShape) else item.mesh
            mentions += [Mention(n, format_path((*base, key, i))) for i, n in enumerate(names)]
        elif isinstance(item, FanOutShape):
            spec = item.fan_out
            mentions.append(Mention(spec.root, format_path((*base, "fan-out", "root"))))
            mentions += [
                Mention(n, format_path((*base, "fan-out", "leaves", i)))
                for i, n in enumerate(spec.leaves)
            ]
        elif isinstance(item, TreeShape):
            mentions += _tree_mentions(item.tree, (*base, "tree"))
        elif isinstance(item, HubShape):
            hub = item.hub
            mentions.append(Mention(hub.hub, format_path((*base, "hub", "hub"))))
            for side in ("inbound", "outbound"):
                mentions += [
                    Mention(n, format_path((*base, "hub", side, i)))
                    for i, n in enumerate(getattr(hub, side))
                ]
    return mentions


def _expand_item(item: Any, base: FieldPath) -> Iterator[tuple[str, str, FieldPath]]:
    if isinstance(item, str):
        for source, target in parse_shorthand(item):
            yield source, target, base
    elif isinstance(item, EdgeSpec):
        yield item.from_, item.to, base
    elif isinstance(item, LinearShape):
        for source, target in zip(item.linear, item.linear[1:], strict=False):
            yield source, target, (*base, "linear")
    elif isinstance(item, FanOutShape):
        for leaf in item.fan_out.leaves:
            yield item.fan_out.root, leaf, (*base, "fan-out")
    elif isinstance(item, TreeShape):
        for source, target in _tree_edges(item.tree):
            yield source, target, (*base, "tree")
    elif isinstance(item, MeshShape):
        for source in item.mesh:
            for target in item.mesh:
                if source != target:
                    yield source, target, (*base, "mesh")
    elif isinstance(item, HubShape):
        for inbound in item.hub.inbound:
            yield inbound, item.hub.hub, (*base, "hub")
        for outbound in item.hub.outbound:
            yield item.hub.hub, outbound, (*base, "hub")


def _tree_edges(level: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Breadth first, so ``{a: {b: [d], c: [f]}}`` gives a->b, a->c, b->d, c->f."""
    queue = list(level.items())
    while queue:
        parent, children = queue.pop(0)
        if isinstance(children, dict):
            for child, grandchildren in children.items():
                yield parent, child
                queue.append((child, grandchildren))
        elif isinstance(children, list):
            for child in children:
                yield parent, child


def _tree_mentions(level: dict[str, Any], path: FieldPath) -> list[Mention]:
    mentions: list[Mention] = []
    for name, children in level.items():
        mentions.append(Mention(name, format_path((*path, name)), key=True))
        if isinstance(children, dict):
            mentions += _tree_mentions(children, (*path, name))
        elif isinstance(children, list):
            mentions += [
                Mention(child, format_path((*path, name, i))) for i, child in enumerate(children)
            ]
    return mentions
