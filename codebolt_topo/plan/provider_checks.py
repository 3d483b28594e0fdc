"""What the planner asks of providers, and the checks that need every provider's answer.

Defined here, below every provider, so that :mod:`codebolt_topo.plan` never imports one: a
provider implements :class:`TopologyRules` (``codebolt_topo.providers.rules`` gives the
defaults) and is found through its entry point. Its :meth:`~TopologyRules.check_topology`
returns :class:`Finding` objects naming the field to change, which become issues with the
file, line and column. Port clashes on this machine's interfaces are checked here, for every
provider whose nodes listen there (``host_network``), and so is a provider that this install
cannot run (its extra is missing: ``unavailable``, optional for a provider's rules), at each
node that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from codebolt_topo.errors import ValidationIssue
from codebolt_topo.model.rules import NodeRules

if TYPE_CHECKING:
    from codebolt_topo.model.loader import LoadedTopology
    from codebolt_topo.model.topology import NodeSpec, Topology
    from codebolt_topo.plan.shapes import Edge

__all__ = [
    "Finding",
    "TopologyRules",
    "TopologyView",
    "port_clashes",
    "provider_issues",
    "shares_host_ports",
    "topology_rules",
    "unavailable",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem a provider found, at the field the user must change (``nodes.a.host``,
    ``edges[2]``); ``key`` points at the field's key rather than its value."""

    field: str
    message: str
    key: bool = False


@dataclass(frozen=True, slots=True)
class TopologyView:
    """What a provider's topology check reads: the nodes, the expanded edges, and the rules of
    every provider the topology uses (to ask what another provider's nodes are)."""

    topology: Topology
    edges: Sequence[Edge]
    rules: Mapping[str, TopologyRules]

    def rules_of(self, spec: NodeSpec) -> TopologyRules | None:
        """The rules of the provider of ``spec`` (None when it is not installed)."""
        return self.rules.get(spec.provider)


@runtime_checkable
class TopologyRules(NodeRules, Protocol):
    """A provider's part in validating and planning a whole topology."""

    #: Its node daemons listen on this machine's own interfaces at the node's host and port.
    host_network: bool

    def check_topology(self, view: TopologyView) -> Iterable[Finding]:
        """Every problem this provider sees in the topology."""
        ...


def topology_rules(loaded: LoadedTopology) -> dict[str, TopologyRules]:
    """The rules ``loaded`` was validated with that also take part in planning, in order."""
    return {name: rules for name, rules in loaded.rules.items() if isinstance(rules, TopologyRules)}


def shares_host_ports(spec: NodeSpec, rules: Mapping[str, TopologyRules]) -> bool:
    """Whether ``spec`` takes its port on this machine's own interfaces (listening there, or
    published there: ``publishes_host_ports``, optional for a provider's rules)."""
    node_rules = rules.get(spec.provider)
    if node_rules is None:
        return False
    return node_rules.host_network or bool(getattr(node_rules, "publishes_host_ports", False))


def unavailable(rules: object) -> str | None:
    """Why the provider of ``rules`` cannot run in this install (with the line to run), or
    None; rules that do not say are taken to run."""
    check = getattr(rules, "unavailable", None)
    problem = check() if callable(check) else None
    return problem if isinstance(problem, str) else None


def provider_issues(loaded: LoadedTopology, edges: Sequence[Edge]) -> list[ValidationIssue]:
    """Providers this install cannot run, port clashes on this machine, then what each provider
    the topology uses finds, located (a provider the file does not use has nothing to say)."""
    rules = topology_rules(loaded)
    issues = []
    for name, spec in loaded.topology.nodes.items():
        problem = unavailable(rules.get(spec.provider))
        if problem is not None:
            field = f"nodes.{name}.provider"
            issues.append(ValidationIssue(loaded.source_map.locate(field), field, problem))
    issues += port_clashes(loaded, rules)
    view = TopologyView(loaded.topology, edges, rules)
    for provider in rules.values():
        for finding in provider.check_topology(view):
            location = loaded.source_map.locate(finding.field, key=finding.key)
            issues.append(ValidationIssue(location, finding.field, finding.message))
    return issues


def port_clashes(
    loaded: LoadedTopology, rules: Mapping[str, TopologyRules]
) -> list[ValidationIssue]:
    """Nodes listening on this machine's interfaces clash on equal ports whatever their
    ``host``; other providers place nodes on machines (or in namespaces) of their own."""
    first: dict[int, str] = {}
    issues = []
    for name, spec in loaded.topology.nodes.items():
        if spec.port is None or not shares_host_ports(spec, rules):
            continue
        if spec.port in first:
            field = f"nodes.{name}.port"
            issues.append(
                ValidationIssue(
                    loaded.source_map.locate(field),
                    field,
                    f"port {spec.port} is already used by node {first[spec.port]!r} "
                    f"({spec.provider} nodes share one machine)",
                )
            )
        else:
            first[spec.port] = name
    return issues
