"""Checks that need the whole graph, and :func:`validate_file`, the planner's entry point.

The loader proves each part of the file well formed; only the graph can tell that an edge names
a node that does not exist, that two local nodes want the same port, or that a topology declared
a tree but drew a diamond. What only a provider knows (which edges its nodes can use, what it
refuses) is asked of each installed provider (:mod:`codebolt_topo.plan.provider_checks`). Each
problem becomes a located issue, and all of a file's issues are raised together, sorted by
line, so one run shows everything to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from codebolt_topo.errors import TopologyError, ValidationIssue
from codebolt_topo.model.issues import did_you_mean
from codebolt_topo.model.loader import LoadedTopology, SchemaError, load_topology
from codebolt_topo.model.source import SourceMap
from codebolt_topo.model.topology import ShapeKind, Topology
from codebolt_topo.plan.desired import REMOTE_EXECUTION
from codebolt_topo.plan.graph import TopologyGraph
from codebolt_topo.plan.provider_checks import provider_issues
from codebolt_topo.plan.replicas import expand_replicas
from codebolt_topo.plan.shapes import Edge, dial_conflicts, expand_edges, node_mentions

__all__ = ["ValidatedTopology", "check_graph", "name_issues", "shape_problem", "validate_file"]

_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True, slots=True)
class ValidatedTopology:
    """A topology that passed every check, with its expanded edges and graph."""

    loaded: LoadedTopology
    graph: TopologyGraph
    edges: tuple[Edge, ...]

    @property
    def topology(self) -> Topology:
        return self.loaded.topology

    @property
    def path(self) -> Path:
        """The file as the caller named it."""
        return self.loaded.path

    @property
    def source_map(self) -> SourceMap:
        return self.loaded.source_map


def validate_file(
    path: Path, text: str | None = None, *, providers: list[str] | None = None
) -> ValidatedTopology:
    """Load, expand and check ``path``; raise one :class:`TopologyError` with every issue."""
    try:
        loaded = load_topology(path, text, providers=providers)
    except SchemaError as error:
        issues = [*error.issues, *name_issues(error.data, error.sources)]
        raise TopologyError(sorted(issues, key=_position)) from None
    edges = expand_edges(loaded.topology)
    graph = TopologyGraph(loaded.topology, edges)
    issues = check_graph(loaded, edges, graph)
    if issues:
        raise TopologyError(issues)
    expanded, edges, issues = expand_replicas(loaded, edges)
    if issues:
        raise TopologyError(issues)
    if expanded is not loaded:
        loaded, graph = expanded, TopologyGraph(expanded.topology, edges)
    return ValidatedTopology(loaded, graph, tuple(edges))


def check_graph(
    loaded: LoadedTopology, edges: list[Edge], graph: TopologyGraph
) -> list[ValidationIssue]:
    """Every graph-level issue, sorted by position in the file."""
    topology, sources = loaded.topology, loaded.source_map
    names = list(topology.nodes)
    issues: list[ValidationIssue] = []

    def add(field: str, message: str, *, key: bool = False) -> None:
        issues.append(ValidationIssue(sources.locate(field, key=key), field, message))

    unknown = False
    for mention in node_mentions(topology):
        if mention.name not in topology.nodes:
            unknown = True
            add(mention.field, _unknown_node(mention.name, names), key=mention.key)
    for edge in edges:
        if edge.source == edge.target and edge.source in topology.nodes:
            add(edge.field, f"edge {edge} sends work to itself")
        elif _refuses_work(topology, edge.target):
            add(edge.field, _refused_edge(edge))
    for field, message in dial_conflicts(topology):
        add(field, message)
    if topology.entry is not None and topology.entry not in topology.nodes:
        unknown = True
        add("entry", _unknown_node(topology.entry, names))
    issues += provider_issues(loaded, edges)
    # Dropped edges would make reachability and shape complaints misleading: fix names first.
    if not unknown:
        if topology.entry is not None:
            reached = {topology.entry, *graph.reachable_from(topology.entry)}
            for name in names:
                if name not in reached:
                    add(
                        f"nodes.{name}",
                        f"node {name!r} is unreachable from entry {topology.entry!r}",
                        key=True,
                    )
        if topology.shape is not None:
            problem = shape_problem(graph, topology.shape)
            if problem:
                add("shape", f"declared shape {topology.shape.value!r} but {problem}")
    return sorted(issues, key=_position)


def name_issues(data: dict[str, Any], sources: SourceMap) -> list[ValidationIssue]:
    """Unknown nodes and self-loops in the well-formed edge items of a file the loader refused.

    These need only the declared names and the item itself, so they are reported beside the
    loader's issues. Reachability, shape and port checks need the whole, valid topology: an
    item left out, or a setting not read, would make them complain about what is not wrong.
    """
    nodes, items = data.get("nodes"), data.get("edges")
    if not isinstance(nodes, dict) or not nodes or not isinstance(items, list):
        return []
    names = [str(name) for name in nodes]
    kept, partial = _well_formed_edges(items)
    issues: list[ValidationIssue] = []

    def add(field: str, message: str, *, key: bool = False) -> None:
        issues.append(ValidationIssue(sources.locate(field, key=key), field, message))

    def original(field: str) -> str:  # edges[j] of the partial topology is edges[kept[j]]
        index, rest = field[len("edges[") :].split("]", 1)
        return f"edges[{kept[int(index)]}]{rest}"

    for mention in node_mentions(partial) if partial else ():
        if mention.name not in names:
            add(original(mention.field), _unknown_node(mention.name, names), key=mention.key)
    for edge in expand_edges(partial) if partial else ():
        if edge.source == edge.target and edge.source in names:
            add(original(edge.field), f"edge {edge} sends work to itself")
    entry = data.get("entry")
    if isinstance(entry, str) and entry not in names:
        add("entry", _unknown_node(entry, names))
    return issues


def _well_formed_edges(items: list[Any]) -> tuple[list[int], Topology | None]:
    """(indices of the items the schema accepts, a topology holding just those items)."""
    kept = list(range(len(items)))
    for _ in range(2):  # the items refused the first time are left out the second
        try:
            partial = Topology.model_validate(
                {"name": "partial", "nodes": {"n": {}}, "edges": [items[i] for i in kept]}
            )
        except ValidationError as exc:
            bad = {
                kept[e["loc"][1]]
                for e in exc.errors()
                if e["loc"][:1] == ("edges",) and len(e["loc"]) > 1 and isinstance(e["loc"][1], int)
            }
            kept = [i for i in kept if i not in bad]
            continue
        return kept, partial
    return [], None


def _position(issue: ValidationIssue) -> tuple[int, int]:
    return issue.location.line or 0, issue.location.column or 0


def _refuses_work(topology: Topology, name: str) -> bool:
    """Whether node ``name`` switched off the plugin that runs work sent by peers."""
    spec = topology.nodes.get(name)
    return spec is not None and spec.plugins.get(REMOTE_EXECUTION) is False


def _refused_edge(edge: Edge) -> str:
    # The edge would plan as "sends work to" and fail every exec with gateway-inactive.
    return (
        f"edge {edge} sends work to node {edge.target!r}, which refuses work from peers "
        f"(plugins: {{{REMOTE_EXECUTION}: false}}); hint: drop the edge, or remove "
        f"{REMOTE_EXECUTION}: false from {edge.target!r} so it accepts the work"
    )


def _unknown_node(name: str, names: list[str]) -> str:
    hint = did_you_mean(name, names) or f" (declared nodes: {', '.join(names)})"
    return f"unknown node {name!r}{hint}"


def shape_problem(graph: TopologyGraph, shape: ShapeKind) -> str | None:
    """Why ``graph`` is not of the declared ``shape`` (a clause), or None when it is."""
    if shape is ShapeKind.ANY or len(graph.nodes) < 2:
        return None
    if not graph.edges():
        return "there are no edges"
    return _SHAPE_CHECKS[shape](graph)


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _count(number: int, noun: str) -> str:
    return f"{_COUNTS.get(number, str(number))} {noun}{'s' if number != 1 else ''}"


def _cycle(graph: TopologyGraph) -> str:
    import networkx as nx

    cycle = [source for source, _ in nx.find_cycle(graph.graph)]
    return f"the edges form a cycle ({' -> '.join([*cycle, cycle[0]])})"


def _linear(graph: TopologyGraph) -> str | None:
    for node in graph.nodes:
        outs, ins = graph.successors(node), graph.predecessors(node)
        if len(outs) > 1:
            return f"node {node!r} sends work to {_count(len(outs), 'node')} ({_names(outs)})"
        if len(ins) > 1:
            return f"node {node!r} has {_count(len(ins), 'parent')} ({_names(ins)})"
    heads = [node for node in graph.nodes if not graph.predecessors(node)]
    if not heads:
        return _cycle(graph)
    if len(heads) > 1:
        return (
            f"the nodes form {_count(len(heads), 'separate chain')} (starting at {_names(heads)})"
        )
    chain = [heads[0], *graph.reachable_from(heads[0])]
    missing = [node for node in graph.nodes if node not in chain]
    return (
        f"node {missing[0]!r} is not on the chain that starts at {heads[0]!r}" if missing else None
    )


def _fan_out(graph: TopologyGraph) -> str | None:
    senders = [node for node in graph.nodes if graph.successors(node)]
    if len(senders) > 1:
        return (
            f"{_count(len(senders), 'node')} send work ({_names(senders)}); in a fan-out "
            "only the root does"
        )
    root = senders[0]
    missing = [n for n in graph.nodes if n != root and n not in graph.successors(root)]
    return f"root {root!r} has no edge to {_names(missing)}" if missing else None


def _tree(graph: TopologyGraph) -> str | None:
    for node in graph.nodes:
        parents = graph.predecessors(node)
        if len(parents) > 1:
            return f"node {node!r} has {_count(len(parents), 'parent')} ({_names(parents)})"
    roots = [node for node in graph.nodes if not graph.predecessors(node)]
    if len(roots) > 1:
        return f"it has {_count(len(roots), 'root')} ({_names(roots)}); a tree has one"
    if not roots or len(graph.reachable_from(roots[0])) < len(graph.nodes) - 1:
        return _cycle(graph)
    return None


def _mesh(graph: TopologyGraph) -> str | None:
    for source, target in graph.edges():
        if not graph.has_edge(target, source):
            return f"edge {source} -> {target} has no reverse edge {target} -> {source}"
    first = graph.nodes[0]
    reached = set(graph.reachable_from(first))
    missing = [node for node in graph.nodes[1:] if node not in reached]
    return f"node {first!r} cannot reach node {missing[0]!r}" if missing else None


def _hub(graph: TopologyGraph) -> str | None:
    edges = graph.edges()
    candidates = [n for n in graph.nodes if all(n in edge for edge in edges)]
    if not candidates:
        apart = next(((a, b) for a in edges for b in edges if not set(a) & set(b)), None)
        if apart is None:
            return "no node is on every edge"
        return (
            f"no node is on every edge ({apart[0][0]} -> {apart[0][1]} and "
            f"{apart[1][0]} -> {apart[1][1]} share no node)"
        )
    problems = []
    for hub in candidates:
        ins, outs = graph.predecessors(hub), graph.successors(hub)
        both = [node for node in ins if node in outs]
        alone = [node for node in graph.nodes if node != hub and node not in ins + outs]
        if both:
            problems.append(
                f"node {both[0]!r} both sends work to and receives work from hub {hub!r}"
            )
        elif alone:
            problems.append(f"node {alone[0]!r} is not connected to hub {hub!r}")
        else:
            return None
    return problems[0]


_SHAPE_CHECKS: dict[ShapeKind, Callable[[TopologyGraph], str | None]] = {
    ShapeKind.LINEAR: _linear,
    ShapeKind.FAN_OUT: _fan_out,
    ShapeKind.TREE: _tree,
    ShapeKind.MESH: _mesh,
    ShapeKind.HUB: _hub,
}
