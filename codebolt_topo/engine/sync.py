"""``codebolt sync``: move narrative history along the edges that declare ``sync``.

Design: the orchestrator drives every transfer through the node protocol's exec channel (see
:mod:`~codebolt_topo.narrative.remote`), connecting to each end node with that node's admin
token from the state file. For one transfer *source → receiver*:

1. on the receiver: ``have`` → the commits it holds (JSON: thread tips, diverged copies and a
   sample of their history, so the sender finds a common commit even after the receiver moved);
2. on the source: ``export --have - --remotes`` with those heads as stdin → the bundle (stdout,
   binary frames), incremental against what the receiver holds, so only the first exchange is
   a full one;
3. on the receiver: ``import --source-env <source>`` with the bundle as stdin → the report.

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

from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import Lifecycle, State

if TYPE_CHECKING:
    from codebolt_topo.narrative.remote import NodeNarrative
    from codebolt_topo.plan.shapes import Edge

__all__ = [
    "EdgeSync",
    "SyncReport",
    "Transfer",
    "describe",
    "node_narrative",
    "plan_transfers",
    "snapshot_nodes",
    "sync_edges",
]

_EDGE = re.compile(r"^\s*([a-z0-9][a-z0-9_-]*)\s*->\s*([a-z0-9][a-z0-9_-]*)\s*$")


@dataclass(frozen=True, slots=True)
class Transfer:
    """One bundle moving from ``source`` to ``receiver`` because of ``edge`` (``a->b``)."""

    edge: str
    direction: Literal["push", "pull"]
    source: str
    receiver: str


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


@dataclass(slots=True)
class SyncReport:
    """Every transfer of one ``codebolt sync``, in the order they ran."""

    transfers: list[EdgeSync] = field(default_factory=list)

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
    from codebolt_topo.engine.statefile import StateFile, state_dir_for
    from codebolt_topo.plan.validate import validate_file

    state = StateFile(state_dir_for(path), validate_file(path).topology.name).load()
    infos: dict[str, dict[str, Any]] = {}
    for node in nodes:
        held = state.nodes.get(node)
        if held is None or held.url is None:
            raise StateError(f"node {node!r} is not running (run: codebolt apply {path})")
        async with NodeClient.connect(held.url, held.admin_token, name=node) as client:
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
    from codebolt_topo.engine.statefile import StateFile, state_dir_for
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(path)
    transfers = plan_transfers(list(validated.edges), edges)
    state = StateFile(state_dir_for(path), validated.topology.name).load()
    report = SyncReport()
    async with contextlib.AsyncExitStack() as stack:
        stores: dict[str, NodeNarrative] = {}

        async def store(node: str) -> NodeNarrative:
            if node not in stores:
                held = state.nodes.get(node)
                if held is None or held.url is None or held.lifecycle is not Lifecycle.RUNNING:
                    raise StateError(f"node {node!r} is not running (run: codebolt apply {path})")
                client = await stack.enter_async_context(
                    NodeClient.connect(held.url, held.admin_token, name=node)
                )
                stores[node] = node_narrative(client, state, node)
            return stores[node]

        for transfer in transfers:
            started = time.monotonic()
            source, receiver = await store(transfer.source), await store(transfer.receiver)
            bundle = await source.export(await receiver.have())
            done = EdgeSync(transfer, bytes=len(bundle))
            if bundle:
                imported = await receiver.import_bundle(bundle, transfer.source)
                for kind in ("created", "updated", "diverged", "unchanged"):
                    getattr(done, kind).extend(c["thread"] for c in imported[kind])
                done.objects_written = int(imported["objects_written"])
            done.seconds = time.monotonic() - started
            report.transfers.append(done)
            progress(describe(done))
    return report


def describe(done: EdgeSync) -> str:
    """One line per transfer: ``a->b push a => b: 1.2 KiB, 1 created, 2 unchanged (0.4 s)``."""
    t = done.transfer
    counts = [
        f"{len(getattr(done, kind))} {kind}"
        for kind in ("created", "updated", "diverged", "unchanged")
        if getattr(done, kind)
    ]
    what = ", ".join(counts) or "nothing to send"
    return (
        f"{t.edge} {t.direction} {t.source} => {t.receiver}: {done.bytes} bytes, {what} "
        f"({done.seconds:.2f} s)"
    )
