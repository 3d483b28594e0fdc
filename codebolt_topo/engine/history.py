"""A node's narrative history is never lost silently: archived before the node goes.

Why: stopping a node removes its store with it (a local node's directory,
``.codebolt/<topology>/nodes/<node>/workspace.narrative``; a container's or a sandbox's
filesystem): every snapshot, and the artifacts that came back from other nodes, gone without a
word. So before a node is stopped for good (``destroy``, removed from the file) or replaced,
its store is exported as a bundle into the archive beside the state
(:mod:`codebolt_topo.engine.archives`), and ``plan`` and ``destroy`` say, node by node, what
becomes of it (:func:`assess`, :func:`history_notice`).

How a store is read: a local node's from disk, whether its daemon still runs or not, without
any token; any other node's through the node itself (``python -m codebolt_topo.narrative
export``, as ``sync`` does), which needs it running and the state key. A shell on the node asks
first whether its store holds any ref at all (``narrative/locate.py``'s HOLDS_HISTORY): most
nodes never snapshotted, and a Python started in each container only to export nothing was
most of a docker destroy's time.

What cannot be read decides the outcome:

* a node that never ran (no handle was ever recorded), or a local node whose store was never
  created, has nothing to lose: it goes, and the notice says so;
* a node whose machine is gone (its provider says the container or the sandbox no longer
  exists) lost its history with it: it goes, and the notice says so;
* a node whose store may still exist but cannot be read (a stopped container, an unreachable
  VM, the state key missing) is not removed: ``apply`` and ``destroy`` refuse before changing
  anything, naming it, until the user says ``--discard-history-of NODE`` (that node only) or
  ``--discard-history`` (every node the command removes). A replaced node is replaced anyway
  (a watch must heal a dead node), and the plan or the watch report says its history is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codebolt_topo.engine.archives import Archive, archive_dir, remove_archive, write_archive
from codebolt_topo.engine.joined_nodes import dials_out_only
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.engine.statekey import is_sealed, require_open
from codebolt_topo.errors import StateError, TopoError
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import Lifecycle, NodeState, State

__all__ = [
    "DISCARD_ALL",
    "DISCARD_ONE",
    "KEEP_ALL",
    "Discard",
    "Fate",
    "HistoryKeeper",
    "HistoryRefused",
    "assess",
    "history_notice",
    "refusal",
]

DISCARD_ALL = "--discard-history"
#: Histories read at once by a destroy (each a bundle in memory, most waiting on a node).
READS_AT_ONCE = 4
DISCARD_ONE = "--discard-history-of"

What = Literal["archive", "through-node", "kept", "never-ran", "empty", "gone", "unreadable"]


@dataclass(frozen=True, slots=True)
class Discard:
    """What the user chose to lose: every removed node's history, or the named nodes'."""

    every: bool = False
    nodes: frozenset[str] = frozenset()

    def __contains__(self, node: object) -> bool:
        return self.every or node in self.nodes

    @classmethod
    def of(cls, every: bool = False, nodes: Iterable[str] = ()) -> Discard:
        return cls(every, frozenset(nodes))


#: Discard nothing: every history is archived (the default).
KEEP_ALL = Discard()


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one node's history when it goes (``replacing``: it is replaced)."""

    node: str
    what: What
    detail: str = ""
    replacing: bool = False
    discarded: bool = False

    @property
    def blocks(self) -> bool:
        """Whether removing the node would lose a history the user did not give up."""
        return self.what == "unreadable" and not self.replacing and not self.discarded

    @property
    def readable(self) -> bool:
        return self.what in ("archive", "through-node") and not self.discarded

    def line(self, archive: Path) -> str:
        """The notice's sentence for this node (``archive``: where archives go)."""
        if self.discarded:
            if self.what in ("never-ran", "empty", "gone", "kept"):
                return f"{self.node}: discarded as asked (there was nothing to keep)"
            return f"{self.node}: discarded as asked: its history is lost"
        said = {
            "archive": f"archived to {archive}/ ({self.detail})",
            "through-node": f"archived through the node to {archive}/, if it holds any",
            "kept": f"kept where it is ({self.detail}, which is not removed)",
            "never-ran": "nothing to keep: the node never ran",
            "empty": "nothing to keep: no snapshot was ever taken on it",
            "gone": f"already lost: {self.detail}",
        }
        if self.what != "unreadable":
            return f"{self.node}: {said[self.what]}"
        if self.replacing:
            return f"{self.node}: cannot be archived ({self.detail}): replacing it loses it"
        return (
            f"{self.node}: CANNOT BE ARCHIVED ({self.detail}): refused unless "
            f"{DISCARD_ONE} {self.node}"
        )


class HistoryRefused(StateError):
    """A node would be removed with a history that cannot be archived: nothing was changed."""

    def __init__(self, message: str, fate: Fate) -> None:
        super().__init__(message)
        #: The (first) node refused.
        self.fate = fate


def refusal(
    fates: Iterable[Fate], command: str, outcome: str = "nothing was changed"
) -> HistoryRefused | None:
    """The error that stops ``command`` before it changes anything (``outcome``: what was
    left as it was), or None."""
    blocked = [f for f in fates if f.blocks]
    if not blocked:
        return None
    names = " ".join(f"{DISCARD_ONE} {f.node}" for f in blocked)
    lines = [f"{f.node}: {f.detail}" for f in blocked]
    return HistoryRefused(
        f"{command} refused: the history of {len(blocked)} node(s) cannot be archived and "
        "removing them would lose it:\n  " + "\n  ".join(lines) + "\nBring them back (codebolt "
        f"apply) to archive it, or give it up: {names} (or {DISCARD_ALL} for every node); "
        f"{outcome}",
        blocked[0],
    )


def _placed_locally(node: NodeState) -> bool:
    """Whether the node's daemon runs on this machine as a local process (hybrid nodes record
    which provider placed them)."""
    placed = node.handle.get("placed_on") if node.provider == "hybrid" else node.provider
    return placed == "local"


def _local_store(state_file: StateBackend, node: NodeState) -> tuple[Path, Path] | None:
    """(store, workspace) of a local node whose store lives in what its removal deletes."""
    if not _placed_locally(node) or node.launch.get("workspace"):
        return None
    node_dir = Path(str(node.handle.get("dir") or state_file.runtime_dir / "nodes" / node.name))
    return node_dir / "workspace.narrative", node_dir / "workspace"


def _local_threads(store: Path) -> int | None:
    """Threads a local store holds, read from the files git keeps refs in (planning opens no
    repository); None when no store was ever created there."""
    git = store / "shadow.git"
    if not git.is_dir():
        return None
    refs = {str(p.relative_to(git)) for p in (git / "refs").rglob("*") if p.is_file()}
    try:
        packed = (git / "packed-refs").read_text()
    except OSError:
        packed = ""
    for line in packed.splitlines():
        if line and not line.startswith(("#", "^")) and " " in line:
            refs.add(line.split(" ", 1)[1])
    return sum(1 for ref in refs if "/threads/" in ref)


def assess(
    state_file: StateBackend,
    node: NodeState,
    observed: Observation | None,
    *,
    replacing: bool = False,
    discard: Discard = KEEP_ALL,
) -> Fate:
    """What will become of ``node``'s history when it is stopped (``observed``: what its
    provider sees now; None: not asked, the state's lifecycle is taken instead)."""
    discarded = node.name in discard
    local = _local_store(state_file, node)
    if local is not None:
        threads = _local_threads(local[0])
        if not threads:
            what: What = "never-ran" if not node.handle else "empty"
            return Fate(node.name, what, replacing=replacing, discarded=discarded)
        return Fate(node.name, "archive", f"{threads} thread(s)", replacing, discarded)
    if _placed_locally(node):
        where = str(node.launch.get("workspace"))
        return Fate(node.name, "kept", f"{where}'s store", replacing, discarded)
    if dials_out_only(node):  # a joined node's store is on its developer's machine
        detail = f"on {node.name}'s own machine, in its join directory"
        return Fate(node.name, "kept", detail, replacing, discarded)
    if not node.handle:
        return Fate(node.name, "never-ran", replacing=replacing, discarded=discarded)
    alive = observed.alive if observed is not None else node.lifecycle is Lifecycle.RUNNING
    if not alive or node.url is None:
        reason = observed.reason if observed is not None else node.lifecycle.value
        if observed is not None and observed.gone:
            return Fate(node.name, "gone", f"{reason}, and its store with it", replacing, discarded)
        detail = f"node {node.name!r} is not running ({reason}): its store cannot be read"
        return Fate(node.name, "unreadable", detail, replacing, discarded)
    if is_sealed(node.admin_token):
        detail = "the state key is missing here: its store cannot be read through the node"
        return Fate(node.name, "unreadable", detail, replacing, discarded)
    return Fate(node.name, "through-node", replacing=replacing, discarded=discarded)


def history_notice(state_file: StateBackend, fates: Iterable[Fate]) -> list[str]:
    """The lines plan, apply and destroy print: one per node that goes, what becomes of its
    history and where it goes; nothing when no node goes."""
    fates = list(fates)
    if not fates:
        return []
    where = archive_dir(state_file)
    return [
        "History of the nodes this replaces or removes:",
        *(f"  {fate.line(where)}" for fate in fates),
    ]


async def _read(state_file: StateBackend, state: State, node: NodeState) -> bytes | None:
    """The node's whole history as a bundle (None: it has none)."""
    local = _local_store(state_file, node)
    if local is not None:
        store, workspace = local
        if _local_threads(store) is None:
            return None
        from codebolt_topo.narrative import NarrativeStore, Selection

        workspace.mkdir(parents=True, exist_ok=True)
        with NarrativeStore.open(store, workspace, node.name) as opened:
            if not opened.heads(include_remotes=True):
                return None
            return opened.export_bundle(Selection.everything(remotes=True))
    require_open(node.admin_token, f"read the history of node {node.name!r}")
    try:
        return await _export_through(state, node, node) or None
    except (TopoError, OSError) as direct:
        # This machine may not reach the node (a container cut off its published port) while
        # its peers still do: ask each running node to route the export, as exec would.
        for via in state.nodes.values():
            if via is node or via.lifecycle is not Lifecycle.RUNNING or is_sealed(via.admin_token):
                continue
            try:
                return await _export_through(state, node, via) or None
            except (TopoError, OSError):
                continue
        raise direct from None


async def _export_through(state: State, node: NodeState, via: NodeState) -> bytes:
    """``node``'s whole history, exported by a job routed to it through ``via``."""
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.sync import node_narrative

    if via.url is None:
        raise StateError(f"node {via.name!r} has no address")
    async with NodeClient.admin(via) as client:
        narrative = node_narrative(client, state, node.name)
        if await narrative.holds_nothing():  # a shell's answer, not a Python's export
            return b""
        return await narrative.export([])


def _why(node: NodeState, error: Exception) -> str:
    """Why a store could not be read, for the user: our errors say it themselves; anything
    else came from the repository library reading a damaged store."""
    if isinstance(error, TopoError | OSError):
        return str(error)
    return f"the store of node {node.name!r} is damaged ({type(error).__name__}: {error})"


def _refused(fate: Fate) -> HistoryRefused:
    """The refusal of one node's removal, at the moment it was to stop."""
    refused = refusal([fate], f"removing node {fate.node!r}", f"node {fate.node!r} stays")
    assert refused is not None, fate
    return refused


class HistoryKeeper:
    """Archives the history of nodes the engine is about to stop (:mod:`.runner` calls
    :meth:`keep` before each stop), as the fates the command showed decided."""

    def __init__(
        self,
        state_file: StateBackend,
        *,
        discard: Discard = KEEP_ALL,
        fates: Mapping[str, Fate] | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.state_file = state_file
        self.discard = discard
        self.fates = dict(fates or {})
        self.progress = progress
        #: What the providers saw of each node, where the caller looked (the watch does).
        self.observed: Mapping[str, Observation] = {}
        #: Archives written by this keeper, in order (:meth:`take_back` removes them).
        self.archived: list[Archive] = []

    async def keep(self, state: State, node: NodeState, *, replacing: bool = False) -> None:
        """Archive ``node``'s history before it is stopped. Raises :class:`HistoryRefused`
        (the node then stays) when the history of a node being removed cannot be read; a
        replaced node goes on, and the report says its history could not be kept."""
        fate = self.fates.pop(node.name, None) or assess(
            self.state_file,
            node,
            self.observed.get(node.name),
            replacing=replacing,
            discard=self.discard,
        )
        if fate.discarded or not fate.readable:
            if fate.blocks:
                raise _refused(fate)
            if fate.what != "never-ran":
                self.progress(fate.line(archive_dir(self.state_file)))
            return
        try:
            data = await _read(self.state_file, state, node)
        except Exception as error:  # a damaged store too: whatever stops the read, say it
            lost = Fate(node.name, "unreadable", _why(node, error), replacing)
            if replacing:
                self.progress(lost.line(archive_dir(self.state_file)))
                return
            raise _refused(lost) from None
        if data is None:
            self.progress(f"{node.name}: no history to archive")
            return
        archive, written = write_archive(self.state_file, state, node.name, node.provider, data)
        if written:
            self.archived.append(archive)
            self.progress(f"{node.name}: history archived to {archive.bundle}")
        else:
            self.progress(f"{node.name}: history unchanged since archive {archive.id}")

    async def keep_all(self, state: State, nodes: Iterable[NodeState]) -> None:
        """Archive every one of ``nodes`` before any of them stops (destroy): read a few at a
        time, as remote reads wait on the network; when any is refused, what the others
        archived is taken back and one error names every refused node."""
        limit = asyncio.Semaphore(READS_AT_ONCE)
        refused: list[Fate] = []

        async def keep(node: NodeState) -> None:
            async with limit:
                try:
                    await self.keep(state, node)
                except HistoryRefused as error:
                    refused.append(error.fate)

        outcomes = await asyncio.gather(*(keep(node) for node in nodes), return_exceptions=True)
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if refused or failed:
            self.take_back()
        if failed:
            raise failed[0]  # an archive that could not be written (a full disk)
        if refused:
            error = refusal(sorted(refused, key=lambda f: f.node), "destroy")
            assert error is not None
            raise error

    def take_back(self) -> None:
        """Remove what this keeper archived (a destroy that then refused to go on)."""
        for archive in self.archived:
            remove_archive(archive)
        self.archived.clear()
