"""The joined provider's rules: a joined node runs on a machine nothing can dial, so each of its
edges is opened by it, to a node that listens where other machines can reach it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.plan.provider_checks import Finding, TopologyView
    from codebolt_topo.providers.base import Provider

__all__ = ["JoinedRules"]


class JoinedRules(ProviderRules):
    """Nodes a developer runs on their own machine with ``codebolt join``."""

    name: ClassVar[str] = "joined"
    category: ClassVar[Category] = Category.CLOUD
    dials_out_only: ClassVar[bool] = True

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        if spec.workspace is not None:
            return (
                "workspace: a joined node's workspace is on its own machine (codebolt join "
                "--workspace), not on this one"
            )
        if spec.count is not None:
            return "count: a joined node is one developer's machine; declare one node each"
        return None

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterator[Finding]:
        from codebolt_topo.plan.provider_checks import Finding

        nodes = view.topology.nodes
        joined = {name for name, spec in nodes.items() if spec.provider == cls.name}
        neighbours: dict[str, int] = dict.fromkeys(joined, 0)
        for edge in view.edges:
            ends = (edge.source, edge.target)
            mine = [end for end in ends if end in joined]
            if not mine:
                continue
            if len(mine) == 2:
                yield Finding(
                    edge.field,
                    f"edge {edge}: both ends are joined nodes, which nothing can dial; "
                    "route their work through a node they both reach",
                )
                continue
            node = mine[0]
            other = edge.target if node == edge.source else edge.source
            neighbours[node] += 1
            wrong = "receiver" if node == edge.source else "sender"
            if edge.dial == wrong:
                yield Finding(
                    edge.field,
                    f"edge {edge}: dial: {wrong} asks {other!r} to dial joined node {node!r}, "
                    "which nothing can dial; drop dial (auto) so that the joined node dials",
                )
            spec = nodes[other]
            rules = view.rules_of(spec)
            if rules is not None and not rules.host_network:
                yield Finding(
                    f"nodes.{other}.provider",
                    f"joined node {node!r} reaches only nodes that listen on this machine's "
                    f"own interfaces (local nodes); {other!r} is a {spec.provider} node (edge "
                    f"{edge})",
                )
            elif is_loopback(spec.host):
                yield Finding(
                    f"nodes.{other}.host",
                    f"node {other!r} listens on {spec.host}, which joined node {node!r}, on "
                    f"another machine, cannot reach (edge {edge}); set host: to an address "
                    "that machine reaches (0.0.0.0: every interface)",
                )
        for node, count in neighbours.items():
            if count == 0:
                yield Finding(
                    f"nodes.{node}.provider",
                    f"joined node {node!r} has no edge to a node it could join through",
                )

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.joined.provider import JoinedProvider

        return JoinedProvider
