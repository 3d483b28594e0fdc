"""The topology as a directed graph: who receives work, where commands enter, how to route.

Everything here is ordered by node declaration order, never by set or hash order, so plans,
routes and renderings are identical from run to run. Importing this module imports networkx
(~180 ms); keep it out of import paths that must start fast (``codebolt --help``, the daemon).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx

from codebolt_topo.model.topology import Topology
from codebolt_topo.plan.shapes import Edge

__all__ = ["Routes", "TopologyGraph"]

#: node -> destination -> next hops to try, best first.
Routes = dict[str, dict[str, list[str]]]


class TopologyGraph:
    """The declared nodes and the edges between them.

    Edges naming undeclared nodes and self-loops are left out: they are reported by
    :mod:`codebolt_topo.plan.validate`, and a graph built despite them must stay usable.
    """

    def __init__(self, topology: Topology, edges: Iterable[Edge]) -> None:
        self.topology = topology
        self.order = {name: index for index, name in enumerate(topology.nodes)}
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(topology.nodes)
        for edge in edges:
            if edge.source in self.order and edge.target in self.order \
                    and edge.source != edge.target:
                self.graph.add_edge(edge.source, edge.target, field=edge.field)

    @property
    def nodes(self) -> list[str]:
        return list(self.order)

    def edges(self) -> list[tuple[str, str]]:
        """Edges sorted by (source, target) declaration order."""
        return sorted(self.graph.edges, key=lambda e: (self.order[e[0]], self.order[e[1]]))

    def _sorted(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=self.order.__getitem__)

    def successors(self, node: str) -> list[str]:
        return self._sorted(self.graph.successors(node))

    def predecessors(self, node: str) -> list[str]:
        return self._sorted(self.graph.predecessors(node))

    def entries(self) -> list[str]:
        """Where commands enter: the declared entry, else the first declared node of each group
        of nodes nothing else sends work to (a node without inbound edges, or a cycle such as a
        mesh that receives nothing from outside)."""
        if self.topology.entry in self.order:
            return [self.topology.entry]
        condensed = nx.condensation(self.graph)
        firsts = [
            min(condensed.nodes[component]["members"], key=self.order.__getitem__)
            for component in condensed if condensed.in_degree(component) == 0
        ]
        return self._sorted(firsts)

    def receivers(self) -> list[str]:
        """Nodes that receive work, so need the RemoteExecutionPlugin enabled."""
        return [node for node in self.order if self.graph.in_degree(node) > 0]

    def reachable_from(self, node: str) -> list[str]:
        """Nodes ``node`` can send work to, directly or through others (itself excluded)."""
        return self._sorted(nx.descendants(self.graph, node))

    def hops(self, source: str, target: str) -> int | None:
        """Fewest hops from ``source`` to ``target``; None when unreachable."""
        try:
            return int(nx.shortest_path_length(self.graph, source, target))
        except nx.NetworkXNoPath:
            return None

    def farthest_from(self, node: str) -> str | None:
        """The reachable node most hops away (first declared on ties); None if none is."""
        lengths = nx.single_source_shortest_path_length(self.graph, node)
        others = [name for name in self.order if name in lengths and name != node]
        if not others:
            return None
        return max(others, key=lambda name: (lengths[name], -self.order[name]))

    def routes(self, *, fallback: bool = False) -> Routes:
        """For each node, every destination it reaches and the next hops towards it.

        The next hops are the successors on some shortest path, in declaration order: each hop
        gets strictly closer, so following routes can never loop, even in a mesh. With
        ``fallback=True`` the other successors that still reach the destination without coming
        back through this node follow, nearest first; they may loop, so callers must carry the
        path taken (the node protocol does).
        """
        distance = dict(nx.all_pairs_shortest_path_length(self.graph))
        routes: Routes = {}
        for node in self.order:
            successors = self.successors(node)
            around = self._distances_without(node) if fallback else {}
            table: dict[str, list[str]] = {}
            for dest in self._sorted(distance[node]):
                if dest == node:
                    continue
                closer = [hop for hop in successors
                          if distance[hop].get(dest) == distance[node][dest] - 1]
                others = sorted(
                    (hop for hop in successors
                     if hop not in closer and dest in around.get(hop, {})),
                    key=lambda hop: (around[hop][dest], self.order[hop]),
                )
                table[dest] = closer + others
            routes[node] = table
        return routes

    def _distances_without(self, node: str) -> dict[str, dict[str, int]]:
        view = nx.restricted_view(self.graph, [node], [])
        return {hop: dict(nx.single_source_shortest_path_length(view, hop))
                for hop in self.graph.successors(node)}

    def to_mermaid(self) -> str:
        """A Mermaid flowchart; a pair of opposite edges is drawn once, with two arrowheads."""
        ids = {name: f"n{index}" for index, name in enumerate(self.order)}
        lines = ["flowchart LR"] + [f'    {ids[name]}["{name}"]' for name in self.order]
        for source, target, both in self._drawn_edges():
            lines.append(f"    {ids[source]} {'<-->' if both else '-->'} {ids[target]}")
        return "\n".join(lines) + "\n"

    def to_dot(self, node_attributes: dict[str, dict[str, str]] | None = None) -> str:
        """Graphviz DOT, with the same pairing of opposite edges as :meth:`to_mermaid`.

        ``node_attributes`` adds Graphviz attributes per node (colours, labels).
        """
        attributes = node_attributes or {}
        lines = [f'digraph "{self.topology.name}" {{', "    rankdir=LR;"]
        for name in self.order:
            extra = ", ".join(f'{key}="{value}"' for key, value in attributes.get(name, {}).items())
            lines.append(f'    "{name}"{f" [{extra}]" if extra else ""};')
        for source, target, both in self._drawn_edges():
            lines.append(f'    "{source}" -> "{target}"{" [dir=both]" if both else ""};')
        return "\n".join(lines) + "\n}\n"

    def to_ascii(self) -> str:
        """A plain-ASCII tree from each entry; a node already drawn shows ``(see above)``.

        Nodes no entry reaches are drawn as extra roots, so every node appears.
        """
        lines: list[str] = []
        drawn: set[str] = set()

        def draw(node: str, prefix: str, branch: str, below: str) -> None:
            if node in drawn:
                lines.append(f"{prefix}{branch}{node} (see above)")
                return
            drawn.add(node)
            lines.append(f"{prefix}{branch}{node}")
            children = self.successors(node)
            for index, child in enumerate(children):
                last = index == len(children) - 1
                draw(child, prefix + below, "`-- " if last else "|-- ",
                     "    " if last else "|   ")

        for root in self._roots_for_drawing():
            if root not in drawn:
                draw(root, "", "", "")
        return "\n".join(lines) + "\n"

    def _roots_for_drawing(self) -> Sequence[str]:
        return [*self.entries(), *self.order]

    def _drawn_edges(self) -> list[tuple[str, str, bool]]:
        drawn: list[tuple[str, str, bool]] = []
        for source, target in self.edges():
            both = self.graph.has_edge(target, source)
            if both and self.order[target] < self.order[source]:
                continue
            drawn.append((source, target, both))
        return drawn
