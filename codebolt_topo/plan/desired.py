"""What each node should be, derived from a validated topology (pure).

Two parts mirror :mod:`codebolt_topo.wire.config`: the *launch* settings, which need a new process
(or container) to change, summarised by :attr:`DesiredNode.launch_hash`; and the *wiring*
(peers, routes, inbound principals, plugins, capabilities), which a ``configure`` push changes on a
running node. Lazy routing is decided here: remote-execution is enabled exactly on nodes that
receive edges, unless the file disables it explicitly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebolt_topo.model.limits import Limits
from codebolt_topo.model.nodes import launch_settings
from codebolt_topo.model.topology import DialMode, NodeSpec

if TYPE_CHECKING:
    from codebolt_topo.plan.graph import TopologyGraph
    from codebolt_topo.plan.validate import ValidatedTopology

__all__ = ["REMOTE_EXECUTION", "DesiredNode", "Lazy", "desired_nodes", "stable_hash"]

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
    routes: Mapping[str, list[str]]
    """Destination -> next hops (a :class:`Lazy` table when built by :func:`desired_nodes`)."""
    plugins: dict[str, dict[str, Any]]
    upstream: Mapping[str, list[str]] = field(default_factory=dict)
    """Upstream sets this node checks request owners against (node/security/principals.py)."""
    keepalive: tuple[float, float] = (30.0, 10.0)
    """WebSocket ping interval and pong timeout of the node's links: its heartbeat settings, so
    a peer notices a dead link as fast as the orchestrator notices a dead node."""
    limits: Limits = field(default_factory=Limits)
    """What one request, connection and the node may take (pushed with the wiring)."""
    dials: Mapping[str, DialMode] = field(default_factory=dict)
    """Peer -> the ``dial`` of the edge to it (absent: ``auto``); the engine resolves ``auto``
    where it knows where both ends run (engine/dialing.py)."""
    inbound_dials: Mapping[str, DialMode] = field(default_factory=dict)
    """Inbound source -> the ``dial`` of the edge from it (absent: ``auto``)."""
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
            **launch_settings(self.spec),
        }
        object.__setattr__(self, "launch_settings", settings)
        object.__setattr__(self, "launch_hash", stable_hash(settings))

    @property
    def wiring(self) -> dict[str, Any]:
        wiring = {
            "peers": list(self.peers),
            "inbound": list(self.inbound),
            "routes": dict(self.routes),
            "plugins": self.plugins,
            "capabilities": sorted(self.spec.capabilities),
            "upstream": dict(self.upstream),
        }
        # Only where the file says: states recorded before ``dial`` existed compare equal.
        if self.dials:
            wiring["dials"] = dict(self.dials)
        if self.inbound_dials:
            wiring["inbound_dials"] = dict(self.inbound_dials)
        return wiring

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


class Lazy(Mapping[str, list[str]]):
    """A table computed on first use, then kept: a plan of 10,000 new nodes never needs their
    routes (only apply's ``configure`` push and a diff against recorded wiring do), and every
    node's routes together are quadratic in a chain."""

    __slots__ = ("_compute", "_table")

    def __init__(self, compute: Callable[[], dict[str, list[str]]]) -> None:
        self._compute: Callable[[], dict[str, list[str]]] | None = compute
        self._table: dict[str, list[str]] | None = None

    def _get(self) -> dict[str, list[str]]:
        if self._table is None:
            assert self._compute is not None
            self._table, self._compute = self._compute(), None
        return self._table

    def __getitem__(self, key: str) -> list[str]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Lazy):
            return self._get() == other._get()
        return self._get() == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._get()) if self._table is not None else "Lazy(<not computed>)"


class _Upstream:
    """Upstream sets per node, computed on demand (what ``node.principals.upstream_sets`` gives
    for every node at once, which is cubic in a chain)."""

    def __init__(self, graph: TopologyGraph) -> None:
        self._graph = graph
        self._sets: dict[str, list[str]] = {}

    def of(self, name: str) -> list[str]:
        """Every node upstream of ``name`` (sorted by name, ``name`` excluded)."""
        known = self._sets.get(name)
        if known is None:
            seen: set[str] = set()
            stack = self._graph.predecessors(name)
            while stack:
                current = stack.pop()
                if current not in seen:
                    seen.add(current)
                    stack.extend(self._graph.predecessors(current))
            seen.discard(name)
            known = self._sets[name] = sorted(seen)
        return known

    def table(self, name: str) -> dict[str, list[str]]:
        """The upstream sets ``name`` checks request owners against."""
        if not self._graph.predecessors(name) and not self._graph.successors(name):
            return {}  # on no edge
        return {n: self.of(n) for n in sorted({name, *self.of(name)}) if self.of(n)}


def _routes_of(graph: TopologyGraph, name: str) -> dict[str, list[str]]:
    return dict(sorted(graph.routes_from(name).items()))


def desired_nodes(validated: ValidatedTopology) -> dict[str, DesiredNode]:
    """Every node of the topology with its launch settings and wiring (routes and upstream sets
    are :class:`Lazy`: computed for the nodes that need them, when they need them)."""
    graph = validated.graph
    receivers = set(graph.receivers())
    dials: dict[str, dict[str, DialMode]] = {}
    inbound_dials: dict[str, dict[str, DialMode]] = {}
    for edge in validated.edges:
        if edge.dial != "auto":
            dials.setdefault(edge.source, {})[edge.target] = edge.dial
            inbound_dials.setdefault(edge.target, {})[edge.source] = edge.dial
    base = validated.path.resolve().parent
    upstream = _Upstream(graph)
    result: dict[str, DesiredNode] = {}
    for name, spec in validated.topology.nodes.items():
        inbound = tuple(sorted(graph.predecessors(name)))
        beat = spec.heartbeat or validated.topology.heartbeat
        result[name] = DesiredNode(
            name=name,
            spec=spec,
            workspace=(base / spec.workspace).resolve() if spec.workspace else None,
            peers=tuple(graph.successors(name)),
            inbound=inbound,
            routes=Lazy(partial(_routes_of, graph, name)),
            plugins=_plugins(spec, name in receivers),
            upstream=Lazy(partial(upstream.table, name)),
            keepalive=(beat.interval, beat.timeout),
            limits=spec.limits or validated.topology.limits,
            dials=dials.get(name, {}),
            inbound_dials=inbound_dials.get(name, {}),
        )
    return result
