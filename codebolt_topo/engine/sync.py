"""``codebolt sync``: move narrative history along the edges that declare ``sync``.

Design: the orchestrator only asks and reports. For each transfer it sends the edge's *sender*
(the node that holds the edge's link and may run work on the receiver) one admin ``sync {peer,
direction}``, and the sender moves the bundle itself, over the edge's own link
(``node/narrative_sync.py``): ``have`` on the receiving store, ``export --have`` on the
sending one, the bundle streamed into ``import --source-env`` with the link's flow control,
verified before any ref moves. No bundle byte passes through the orchestrator, and no node
needs another's admin token. A sender too old to know ``sync`` is synced the old way, through
the orchestrator (:mod:`~codebolt_topo.engine.sync_relay`).

``push`` moves ``from → to``, ``pull`` moves ``to → from``, ``both`` does both (push first).
Transfers run one at a time in topological order of the transfer graph (cycles, such as a
``both`` edge, keep declaration order), so within one sync what ``a`` pushes to ``b`` reaches
``c`` when ``b → c`` also syncs: every export includes the diverged copies kept side by side,
under the name of the environment they diverged in.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from codebolt_topo.engine.joined_nodes import dials_out_only
from codebolt_topo.errors import ConfigError, ExecError, StateError
from codebolt_topo.model.state import Lifecycle, State

if TYPE_CHECKING:
    from codebolt_topo.narrative.remote import NodeNarrative
    from codebolt_topo.plan.shapes import Edge
    from codebolt_topo.providers.joined.member import JoinedHome

__all__ = [
    "EdgeSync",
    "SyncReport",
    "Transfer",
    "describe",
    "node_narrative",
    "plan_transfers",
    "snapshot_nodes",
    "sync_edges",
    "sync_from_joined",
]

_EDGE = re.compile(r"^\s*([a-z0-9][a-z0-9_-]*)\s*->\s*([a-z0-9][a-z0-9_-]*)\s*$")


@dataclass(frozen=True, slots=True)
class Transfer:
    """One bundle moving from ``source`` to ``receiver`` because of ``edge`` (``a->b``)."""

    edge: str
    direction: Literal["push", "pull"]
    source: str
    receiver: str

    @property
    def sender(self) -> str:
        """The edge's sender, which drives the transfer (it holds the edge's link)."""
        return self.source if self.direction == "push" else self.receiver

    @property
    def peer(self) -> str:
        """The edge's receiver: the sender's peer."""
        return self.receiver if self.direction == "push" else self.source


@dataclass(slots=True)
class EdgeSync:
    """What one transfer did: bundle size, seconds, and thread ids per outcome."""

    transfer: Transfer
    bytes: int = 0
    seconds: float = 0.0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    objects_written: int = 0
    route: Literal["edge", "orchestrator"] = "edge"
    """Where the bundle travelled: over the edge's link, or relayed through the orchestrator
    (a sender that predates the ``sync`` message)."""

    def take(self, summary: dict[str, Any] | None) -> None:
        """Fill the outcome from the import's summary (``report`` of ``synced``: thread ids
        per outcome, objects written; None: nothing was sent)."""
        if summary is None:
            return
        for kind in ("created", "updated", "diverged", "unchanged"):
            getattr(self, kind).extend(summary.get(kind, ()))
        self.objects_written = int(summary.get("objects_written", 0))


@dataclass(slots=True)
class SyncReport:
    """Every transfer of one ``codebolt sync``, in the order they ran."""

    transfers: list[EdgeSync] = field(default_factory=list)
    elsewhere: list[Transfer] = field(default_factory=list)
    """Transfers whose sender joined from its own machine: it runs them from there."""

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.transfers)


def plan_transfers(edges: list[Edge], wanted: list[str] | None = None) -> list[Transfer]:
    """The transfers for the syncing *edges* (only *wanted* ``a->b`` ones when given), ordered.

    Naming an edge that does not exist or does not sync is a ConfigError.
    """
    import networkx as nx

    by_pair = {(e.source, e.target): e for e in edges}
    chosen = [e for e in edges if e.sync != "none"]
    if wanted is not None:
        chosen = []
        for text in wanted:
            match = _EDGE.match(text)
            edge = by_pair.get((match[1], match[2])) if match else None
            if edge is None:
                raise ConfigError(f"no edge {text!r} in the topology (write it as a->b)")
            if edge.sync == "none":
                raise ConfigError(f"edge {text!r} does not sync (add sync: push|pull|both)")
            chosen.append(edge)
    transfers: list[Transfer] = []
    for e in dict.fromkeys(chosen):
        label = f"{e.source}->{e.target}"
        if e.sync in ("push", "both"):
            transfers.append(Transfer(label, "push", e.source, e.target))
        if e.sync in ("pull", "both"):
            transfers.append(Transfer(label, "pull", e.target, e.source))
    graph = nx.DiGraph((t.source, t.receiver) for t in transfers)
    condensed = nx.condensation(graph)
    rank = {scc: i for i, scc in enumerate(nx.topological_sort(condensed))}
    member = condensed.graph["mapping"]
    order = {t: i for i, t in enumerate(transfers)}
    return sorted(transfers, key=lambda t: (rank[member[t.source]], order[t]))


def node_narrative(client: Any, state: State, node: str) -> NodeNarrative:
    """The store of *node*, reached through *client*; local nodes run our own Python."""
    from codebolt_topo.narrative.remote import NodeNarrative

    local = state.nodes[node].provider == "local"
    return NodeNarrative(client, node, env={"CODEBOLT_PYTHON": sys.executable} if local else {})


async def snapshot_nodes(
    path: Path, nodes: list[str], objective: str, thread: str, run: str, **names: str
) -> dict[str, dict[str, Any]]:
    """Snapshot the workspace of each of *nodes* (connecting to each with its admin token).

    A snapshot on demand, outside any request. To bracket a command, ask the request itself
    (``SnapshotRequest``, ``codebolt exec --snapshot``): the executing node then takes the
    snapshots around exactly that job. *names*: name, message, run_name, …
    """
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.plan.validate import validate_file

    state = backend_for(path, validate_file(path).topology).load()
    infos: dict[str, dict[str, Any]] = {}
    for node in nodes:
        held = state.nodes.get(node)
        if held is None or held.url is None:
            raise StateError(f"node {node!r} is not running (run: codebolt apply {path})")
        async with NodeClient.admin(held) as client:
            store = node_narrative(client, state, node)
            infos[node] = await store.snapshot(objective, thread, run, **names)
    return infos


async def sync_edges(
    path: Path,
    edges: list[str] | None = None,
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> SyncReport:
    """Sync the topology at *path* along *edges* (``a->b``; default: every syncing edge)."""
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.engine.sync_relay import predates_sync, relay_transfer
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(path)
    transfers = plan_transfers(list(validated.edges), edges)
    state = backend_for(path, validated.topology).load()
    report = SyncReport()
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, NodeClient] = {}

        async def admin(node: str) -> NodeClient:
            if node not in clients:
                held = state.nodes.get(node)
                if held is None or held.url is None or held.lifecycle is not Lifecycle.RUNNING:
                    raise StateError(f"node {node!r} is not running (run: codebolt apply {path})")
                clients[node] = await stack.enter_async_context(NodeClient.admin(held))
            return clients[node]

        for transfer in transfers:
            held = state.nodes.get(transfer.sender)
            if held is not None and held.url is None and dials_out_only(held):
                report.elsewhere.append(transfer)  # nothing here can reach it to ask
                progress(
                    f"{transfer.edge} {transfer.direction}: {transfer.sender} joined from its "
                    "own machine and syncs from there ('codebolt sync' in its join directory)"
                )
                continue
            started = time.monotonic()
            sender = await admin(transfer.sender)
            try:
                synced = await sender.sync(transfer.peer, transfer.direction)
                done = EdgeSync(transfer, bytes=int(synced["bytes"]))
                done.take(synced.get("report"))
            except ExecError as exc:
                if not predates_sync(exc):
                    raise
                source = node_narrative(await admin(transfer.source), state, transfer.source)
                receiver = node_narrative(await admin(transfer.receiver), state, transfer.receiver)
                done = await relay_transfer(transfer, source, receiver)
            done.seconds = time.monotonic() - started
            report.transfers.append(done)
            progress(describe(done))
    return report


async def sync_from_joined(
    home: JoinedHome,
    peers: list[str] | None = None,
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> SyncReport:
    """``codebolt sync`` on a machine that joined a topology: its node pushes its history to
    each node it sends work to (``peers``: only those), over the links it opened; this process
    only asks, as the orchestrator does."""
    from codebolt_topo.client import NodeClient

    membership = home.membership()
    if not membership.pid:
        raise StateError(f"joined node {membership.node!r} is not running here (codebolt join)")
    report = SyncReport()
    async with NodeClient.connect(membership.url, membership.admin_token) as node:
        known = list((await node.info()).get("peers", []))
        unknown = sorted(set(peers or []) - set(known))
        if unknown:
            raise ConfigError(
                f"{membership.node} sends work to {', '.join(known) or 'nobody'}, not to "
                f"{', '.join(unknown)}"
            )
        for peer in peers or known:
            transfer = Transfer(f"{membership.node}->{peer}", "push", membership.node, peer)
            started = time.monotonic()
            synced = await node.sync(peer, "push")
            done = EdgeSync(transfer, bytes=int(synced["bytes"]))
            done.take(synced.get("report"))
            done.seconds = time.monotonic() - started
            report.transfers.append(done)
            progress(describe(done))
    return report


def describe(done: EdgeSync) -> str:
    """One line per transfer: ``a->b push a => b: 1234 bytes, 1 created, 2 unchanged (0.4 s)``,
    saying so when the bundle was relayed through this process (an old sender)."""
    t = done.transfer
    counts = [
        f"{len(getattr(done, kind))} {kind}"
        for kind in ("created", "updated", "diverged", "unchanged")
        if getattr(done, kind)
    ]
    what = ", ".join(counts) or "nothing to send"
    relayed = (
        f", relayed here (node {t.sender!r} predates node-to-node sync)"
        if done.route == "orchestrator"
        else ""
    )
    return (
        f"{t.edge} {t.direction} {t.source} => {t.receiver}: {done.bytes} bytes, {what}"
        f"{relayed} ({done.seconds:.2f} s)"
    )
