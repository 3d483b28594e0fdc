"""``count: N`` expands one node into replicas ``name-1`` … ``name-N`` (pure).

Replica names are stable (scaling 3 → 5 adds ``-4`` and ``-5`` and touches nothing else) and
always numbered once ``count`` is written, even for 1, so scaling never renames a node. An edge
that names a replicated node reaches every replica: ``a -> worker`` with ``count: 3`` becomes
three edges, and ``worker -> db`` lets each replica send work to ``db``.
"""

from __future__ import annotations

from dataclasses import replace

from codebolt_topo.errors import ValidationIssue
from codebolt_topo.model.loader import LoadedTopology
from codebolt_topo.plan.provider_checks import shares_host_ports, topology_rules
from codebolt_topo.plan.shapes import Edge

__all__ = ["expand_replicas", "replica_names"]


def replica_names(name: str, count: int | None) -> list[str]:
    return [name] if count is None else [f"{name}-{i}" for i in range(1, count + 1)]


def expand_replicas(
    loaded: LoadedTopology, edges: list[Edge]
) -> tuple[LoadedTopology, list[Edge], list[ValidationIssue]]:
    """The topology with replicas as nodes of their own, its edges, and problems found."""
    topology = loaded.topology
    if all(spec.count is None for spec in topology.nodes.values()):
        return loaded, edges, []
    issues = []
    names: dict[str, list[str]] = {}
    nodes = {}
    rules = topology_rules(loaded)
    for name, spec in topology.nodes.items():
        names[name] = replica_names(name, spec.count)
        if (
            spec.count
            and spec.count > 1
            and spec.port is not None
            and shares_host_ports(spec, rules)
        ):
            issues.append(
                ValidationIssue(
                    loaded.source_map.locate(("nodes", name, "port")),
                    f"nodes.{name}.port",
                    f"{spec.count} replicas of {name!r} on this machine cannot share port "
                    f"{spec.port}",
                )
            )
        for replica in names[name]:
            if replica != name and replica in topology.nodes:
                issues.append(
                    ValidationIssue(
                        loaded.source_map.locate(("nodes", name, "count")),
                        f"nodes.{name}.count",
                        f"replica {replica!r} of {name!r} clashes with a declared node",
                    )
                )
            nodes[replica] = spec.model_copy(update={"count": None})
    expanded_edges: list[Edge] = []
    seen = set()
    for edge in edges:
        for source in names.get(edge.source, [edge.source]):
            for target in names.get(edge.target, [edge.target]):
                if (source, target) not in seen:
                    seen.add((source, target))
                    expanded_edges.append(replace(edge, source=source, target=target))
    entry = topology.entry
    if entry is not None and topology.nodes[entry].count is not None:
        entry = names[entry][0]
    expanded = topology.model_copy(update={"nodes": nodes, "entry": entry})
    return replace(loaded, topology=expanded), expanded_edges, issues
