"""Where a command enters a running topology, and with which credentials.

``codebolt exec`` (and agents using :func:`open_entry`) connect to one node, the *entry*, with
that node's admin token from the state file; the entry routes the request along the edges.
The default entry is the first root of the graph that can reach every target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import Lifecycle, State
from codebolt_topo.plan.validate import ValidatedTopology, validate_file

__all__ = ["Entry", "UndeliverableError", "resolve_entry"]

UNDELIVERED = 255
"""Exit status when a request cannot be delivered (as ssh returns when it cannot connect)."""


class UndeliverableError(ConfigError):
    """The request cannot reach its targets: no path along the edges from the entry, or the
    entry node is not running. ``codebolt exec`` exits 255 for it, as for an undeliverable
    request refused on the way."""

    exit_code = UNDELIVERED


@dataclass(frozen=True, slots=True)
class Entry:
    """A node to connect to, and the targets the request will name."""

    node: str
    url: str
    token: str
    targets: list[str]
    ca: str | None = None
    """The topology's CA to pin when the entry serves TLS (``NodeClient.connect(ca=...)``)."""


def _reachable(validated: ValidatedTopology, source: str) -> set[str]:
    return {source, *validated.graph.reachable_from(source)}


def _connectable(state: State, name: str) -> bool:
    node = state.nodes.get(name)
    return node is not None and node.url is not None


def resolve_entry(
    path: Path,
    targets: list[str] | None,
    *,
    from_node: str | None = None,
    all_nodes: bool = False,
) -> Entry:
    """Pick the entry node for ``targets`` (or every node reachable from it with ``all_nodes``)."""
    validated = validate_file(path)
    topology = validated.topology
    state = backend_for(path, topology).load()
    if not state.nodes:
        raise StateError(f"topology {topology.name!r} is not applied (run: codebolt apply {path})")
    for name in [*(targets or []), *([from_node] if from_node else [])]:
        if name not in topology.nodes:
            known = ", ".join(topology.nodes)
            raise ConfigError(
                f"unknown node {name!r} in topology {topology.name!r} (nodes: {known})"
            )
    candidates = [from_node] if from_node else list(validated.graph.entries())
    if not from_node:  # a node this machine cannot connect to (joined elsewhere) is no entry:
        # the roots it can connect to, else any node it can connect to (a hub the roots feed)
        candidates = (
            [c for c in candidates if _connectable(state, c)]
            or [n for n in topology.nodes if _connectable(state, n)]
            or candidates
        )
    if not all_nodes and targets:
        wanted = set(targets)
        candidates = [c for c in candidates if wanted <= _reachable(validated, c)] or candidates
    entry = candidates[0]
    if all_nodes:  # the entry included, as with --all --requires (engine/select.py)
        reachable = _reachable(validated, entry)
        targets = [n for n in topology.nodes if n in reachable]
    if not targets:
        raise ConfigError("name a target node, or use --all")
    unreachable = sorted(set(targets) - _reachable(validated, entry))
    if unreachable:
        raise UndeliverableError(
            f"node(s) {', '.join(unreachable)} cannot be reached from {entry!r} along the edges "
            f"(use --from NODE)"
        )
    node = state.nodes.get(entry)
    if node is None or node.url is None or node.lifecycle is not Lifecycle.RUNNING:
        raise UndeliverableError(
            f"entry node {entry!r} is not running (run: codebolt apply {path})"
        )
    return Entry(
        node=entry, url=node.url, token=node.admin_token, targets=list(targets), ca=node.pinned_ca
    )
