"""What each node should be, derived from a validated topology (pure).

Two parts mirror :mod:`codebolt_topo.node.config`: the *launch* settings, which need a new process
(or container) to change, summarised by :attr:`DesiredNode.launch_hash`; and the *wiring*
(peers, routes, inbound principals, plugins, capabilities), which a ``configure`` push changes on a
running node. Lazy routing is decided here: remote-execution is enabled exactly on nodes that
receive edges, unless the file disables it explicitly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.node.principals import upstream_sets

if TYPE_CHECKING:
    from codebolt_topo.plan.validate import ValidatedTopology

__all__ = ["REMOTE_EXECUTION", "DesiredNode", "desired_nodes", "stable_hash"]

REMOTE_EXECUTION = "remote-execution"


def stable_hash(value: Any) -> str:
    """A short digest of JSON-able data that does not depend on dict order."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class DesiredNode:
    """One node as the topology file wants it."""

    name: str
    spec: NodeSpec
    workspace: Path | None
    peers: tuple[str, ...]
    inbound: tuple[str, ...]
    routes: dict[str, list[str]]
    plugins: dict[str, dict[str, Any]]
    upstream: dict[str, list[str]] = field(default_factory=dict)
    """Upstream sets this node checks request owners against (node/principals.py)."""
    launch_settings: dict[str, Any] = field(init=False, repr=False, compare=False)
    launch_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once: the reconciler compares them for every node on every pass.
        settings = {
            "provider": self.spec.provider,
            "host": self.spec.host,
            "port": self.spec.port,
            "env": dict(sorted(self.spec.env.items())),
            "workspace": str(self.workspace) if self.workspace else None,
            **self.spec.container_settings(),
            **self.spec.remote_settings(),
        }
        object.__setattr__(self, "launch_settings", settings)
        object.__setattr__(self, "launch_hash", stable_hash(settings))

    @property
    def wiring(self) -> dict[str, Any]:
        return {
            "peers": list(self.peers),
            "inbound": list(self.inbound),
            "routes": self.routes,
            "plugins": self.plugins,
            "capabilities": sorted(self.spec.capabilities),
            "upstream": self.upstream,
        }

    @property
    def gateway_active(self) -> bool:
        return REMOTE_EXECUTION in self.plugins


def _plugins(spec: NodeSpec, receives_edges: bool) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for name, value in spec.plugins.items():
        if value is False:
            continue
        settings[name] = {} if value is True else dict(value)
    if receives_edges and spec.plugins.get(REMOTE_EXECUTION, True) is not False:
        settings.setdefault(REMOTE_EXECUTION, {})
    return dict(sorted(settings.items()))


def desired_nodes(validated: ValidatedTopology) -> dict[str, DesiredNode]:
    """Every node of the topology with its launch settings and wiring."""
    graph = validated.graph
    routes = graph.routes()
    receivers = set(graph.receivers())
    base = validated.path.resolve().parent
    upstream = upstream_sets(graph.edges())
    result: dict[str, DesiredNode] = {}
    for name, spec in validated.topology.nodes.items():
        inbound = tuple(sorted(graph.predecessors(name)))
        result[name] = DesiredNode(
            name=name,
            spec=spec,
            workspace=(base / spec.workspace).resolve() if spec.workspace else None,
            peers=tuple(graph.successors(name)),
            inbound=inbound,
            routes={dest: list(hops) for dest, hops in sorted(routes.get(name, {}).items())},
            plugins=_plugins(spec, name in receivers),
            upstream=upstream.get(name, {}),
        )
    return result
