"""The topology as a directed graph: who receives work, where commands enter, how to route.

Everything here is ordered by node declaration order, never by set or hash order, so plans,
routes and renderings are identical from run to run. The graph is plain adjacency lists: what
validate and plan need (successors, reachability, hop counts, one node's routes) is a breadth-first
search or less, and networkx (~180 ms to import) is loaded only for the rare questions that want
it (:attr:`TopologyGraph.graph`, routes with fallbacks). Routes are computed per node, on demand:
a 10,000-node chain has 50 million (node, destination) pairs, which no plan should materialise.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from codebolt_topo.model.topology import Topology
from codebolt_topo.plan.shapes import Edge

if TYPE_CHECKING:
    import networkx as nx

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
        self._fields: dict[tuple[str, str], str] = {}
        succ: dict[str, list[str]] = {name: [] for name in self.order}
        pred: dict[str, list[str]] = {name: [] for name in self.order}
        for edge in edges:
            pair = (edge.source, edge.target)
            if (
                edge.source in self.order
                and edge.target in self.order
                and edge.source != edge.target
                and pair not in self._fields
            ):
                self._fields[pair] = edge.field
                succ[edge.source].append(edge.target)
                pred[edge.target].append(edge.source)
        key = self.order.__getitem__
        self._succ = {name: sorted(out, key=key) for name, out in succ.items()}
        self._pred = {name: sorted(into, key=key) for name, into in pred.items()}
        self._distances: dict[str, dict[str, int]] = {}

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The same graph as a networkx DiGraph (imports networkx; edges carry ``field``)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.order)
        for (source, target), field in self._fields.items():
            graph.add_edge(source, target, field=field)
        return graph

    @property
    def nodes(self) -> list[str]:
        return list(self.order)

    def edges(self) -> list[tuple[str, str]]:
        """Edges sorted by (source, target) declaration order."""
        return [(source, target) for source in self.order for target in self._succ[source]]

    def has_edge(self, source: str, target: str) -> bool:
        return (source, target) in self._fields

    def _sorted(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=self.order.__getitem__)

    def successors(self, node: str) -> list[str]:
        return list(self._succ[node])

    def predecessors(self, node: str) -> list[str]:
        return list(self._pred[node])

    def entries(self) -> list[str]:
        """Where commands enter: the declared entry, else the first declared node of each group
        of nodes nothing else sends work to (a node without inbound edges, or a cycle such as a
        mesh that receives nothing from outside)."""
        if self.topology.entry in self.order:
            return [self.topology.entry]
        component = self._components()
        fed = {component[t] for s, t in self._fields if component[s] != component[t]}
        firsts: dict[int, str] = {}
        for name in self.order:  # declaration order: the first member is the smallest
            firsts.setdefault(component[name], name)
        return self._sorted(first for comp, first in firsts.items() if comp not in fed)

    def _components(self) -> dict[str, int]:
        """Strongly connected component of every node (Kosaraju, iterative)."""
        finished: list[str] = []
        seen: set[str] = set()
        for root in self.order:
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, iter(self._succ[root]))]
            while stack:
                node, children = stack[-1]
                for child in children:
                    if child not in seen:
                        seen.add(child)
                        stack.append((child, iter(self._succ[child])))
                        break
                else:
                    stack.pop()
                    finished.append(node)
        component: dict[str, int] = {}
        for number, root in enumerate(reversed(finished)):
            if root in component:
                continue
            component[root] = number
            todo = [root]
            while todo:
                for parent in self._pred[todo.pop()]:
                    if parent not in component:
                        component[parent] = number
                        todo.append(parent)
        return component

    def receivers(self) -> list[str]:
        """Nodes that receive work, so need the RemoteExecutionPlugin enabled."""
        return [node for node in self.order if self._pred[node]]

    def distances_from(self, node: str) -> dict[str, int]:
        """Fewest hops from ``node`` to every node it reaches (itself at 0); cached."""
        known = self._distances.get(node)
        if known is None:
            known = self._distances[node] = {node: 0}
            queue = deque([node])
            succ = self._succ
            while queue:
                current = queue.popleft()
                step = known[current] + 1
                for child in succ[current]:
                    if child not in known:
                        known[child] = step
                        queue.append(child)
        return known

    def reachable_from(self, node: str) -> list[str]:
        """Nodes ``node`` can send work to, directly or through others (itself excluded)."""
        reached = self.distances_from(node)
        return [name for name in self.order if name in reached and name != node]

    def hops(self, source: str, target: str) -> int | None:
        """Fewest hops from ``source`` to ``target``; None when unreachable."""
        return self.distances_from(source).get(target)

    def farthest_from(self, node: str) -> str | None:
        """The reachable node most hops away (first declared on ties); None if none is."""
        lengths = self.distances_from(node)
        others = [name for name in self.order if name in lengths and name != node]
        if not others:
            return None
        return max(others, key=lambda name: (lengths[name], -self.order[name]))

    def routes_from(self, node: str) -> dict[str, list[str]]:
        """``node``'s routing table: every destination it reaches -> the successors on some
        shortest path towards it, in declaration order (see :meth:`routes`).

        One breadth-first pass: each destination inherits the first hops of its parents in the
        shortest-path DAG, kept as a bit set over the successors. Destinations come in
        declaration order.
        """
        successors = self._succ[node]
        bit = {hop: 1 << index for index, hop in enumerate(successors)}
        first: dict[str, int] = {node: 0}
        depth: dict[str, int] = {node: 0}
        frontier = list(successors)
        for hop in successors:
            first[hop], depth[hop] = bit[hop], 1
        succ = self._succ
        level = 1
        while frontier:
            level += 1
            following: list[str] = []
            for current in frontier:
                inherited = first[current]
                for child in succ[current]:
                    seen = depth.get(child)
                    if seen is None:
                        depth[child], first[child] = level, inherited
                        following.append(child)
                    elif seen == level:
                        first[child] |= inherited
            frontier = following
        table: dict[str, list[str]] = {}
        for dest in self.order:
            mask = first.get(dest)
            if mask is None or dest == node:
                continue
            hops: list[str] = []
            while mask:  # set bits only: a hub has thousands of successors, a dest few hops
                low = mask & -mask
                hops.append(successors[low.bit_length() - 1])
                mask ^= low
            table[dest] = hops
        return table

    def routes(self, *, fallback: bool = False) -> Routes:
        """For each node, every destination it reaches and the next hops towards it.

        The next hops are the successors on some shortest path, in declaration order: each hop
        gets strictly closer, so following routes can never loop, even in a mesh. With
        ``fallback=True`` the other successors that still reach the destination without coming
        back through this node follow, nearest first; they may loop, so callers must carry the
        path taken (the node protocol does).

        This is every node's table at once (quadratic in a chain): callers that need one node's
        should use :meth:`routes_from`.
        """
        routes: Routes = {node: self.routes_from(node) for node in self.order}
        if not fallback:
            return routes
        for node in self.order:
            around = self._distances_without(node)
            table = routes[node]
            for dest, closer in table.items():
                table[dest] = closer + sorted(
                    (
                        hop
                        for hop in self._succ[node]
                        if hop not in closer and dest in around.get(hop, {})
                    ),
                    key=lambda hop: (around[hop][dest], self.order[hop]),
                )
        return routes

    def _distances_without(self, node: str) -> dict[str, dict[str, int]]:
        import networkx as nx

        view = nx.restricted_view(self.graph, [node], [])
        return {
            hop: dict(nx.single_source_shortest_path_length(view, hop)) for hop in self._succ[node]
        }

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
                draw(child, prefix + below, "`-- " if last else "|-- ", "    " if last else "|   ")

        for root in self._roots_for_drawing():
            if root not in drawn:
                draw(root, "", "", "")
        return "\n".join(lines) + "\n"

    def _roots_for_drawing(self) -> Sequence[str]:
        return [*self.entries(), *self.order]

    def _drawn_edges(self) -> list[tuple[str, str, bool]]:
        drawn: list[tuple[str, str, bool]] = []
        for source, target in self.edges():
            both = self.has_edge(target, source)
            if both and self.order[target] < self.order[source]:
                continue
            drawn.append((source, target, both))
        return drawn
