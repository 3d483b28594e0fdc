"""The Objective → Thread → Agent Run → Snapshot tree, rebuilt from commits and refs.

Nothing but the commits themselves records the hierarchy (see
:mod:`~codebolt_topo.narrative.metadata`), so whatever moved the commits (a bundle, a tarball,
``git fetch``) also moved the hierarchy; this module only reads it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit

from codebolt_topo.narrative.metadata import SnapshotMeta, parse_message

__all__ = [
    "ObjectiveLog",
    "RunLog",
    "SnapshotInfo",
    "ThreadLog",
    "build_log",
    "first_parent_history",
    "snapshot_info",
]


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One snapshot: its commit and its place in the hierarchy."""

    commit: str
    tree: str
    parents: tuple[str, ...]
    meta: SnapshotMeta
    message: str
    """The message without the metadata trailers."""

    @property
    def snapshot_id(self) -> str:
        return self.meta.snapshot_id


@dataclass(slots=True)
class RunLog:
    """An agent run: consecutive snapshots of one thread sharing a run id."""

    id: str
    name: str
    snapshots: list[SnapshotInfo] = field(default_factory=list)


@dataclass(slots=True)
class ThreadLog:
    """A thread: one ref. ``source_env`` is set for a diverged copy kept beside the local one."""

    id: str
    name: str
    ref: str
    head: str
    source_env: str | None = None
    runs: list[RunLog] = field(default_factory=list)


@dataclass(slots=True)
class ObjectiveLog:
    """An objective and its threads (local threads first, then diverged copies)."""

    id: str
    name: str
    threads: list[ThreadLog] = field(default_factory=list)


def snapshot_info(commit: Commit) -> SnapshotInfo | None:
    """Describe *commit*; ``None`` when it carries no narrative metadata."""
    meta = parse_message(commit.message)
    if meta is None:
        return None
    text = commit.message.decode("utf-8", "replace").rstrip("\n").rsplit("\n\n", 1)[0]
    return SnapshotInfo(
        commit=commit.id.decode(),
        tree=commit.tree.decode(),
        parents=tuple(p.decode() for p in commit.parents),
        meta=meta,
        message=text,
    )


def first_parent_history(store: BaseObjectStore, tip: bytes) -> Iterator[Commit]:
    """Commits from *tip* back to the root along first parents (newest first)."""
    sha: bytes | None = tip
    while sha is not None:
        commit = store[sha]  # type: ignore[index]
        if not isinstance(commit, Commit):
            return
        yield commit
        sha = commit.parents[0] if commit.parents else None


def build_log(
    store: BaseObjectStore, threads: list[tuple[bytes, bytes, str | None]]
) -> list[ObjectiveLog]:
    """Build the tree from ``(ref, tip, source_env)`` triples; oldest snapshots first."""
    objectives: dict[str, ObjectiveLog] = {}
    for ref, tip, source_env in threads:
        infos = [i for c in first_parent_history(store, tip) if (i := snapshot_info(c))]
        if not infos:
            continue
        infos.reverse()
        last = infos[-1].meta
        thread = ThreadLog(
            id=last.thread_id,
            name=last.thread_name,
            ref=ref.decode(),
            head=tip.decode(),
            source_env=source_env,
        )
        for info in infos:
            if not thread.runs or thread.runs[-1].id != info.meta.run_id:
                thread.runs.append(RunLog(id=info.meta.run_id, name=info.meta.run_name))
            thread.runs[-1].snapshots.append(info)
        objective = objectives.setdefault(
            last.objective_id, ObjectiveLog(id=last.objective_id, name=last.objective_name)
        )
        objective.threads.append(thread)
    for objective in objectives.values():
        objective.threads.sort(key=lambda t: (t.source_env is not None, t.source_env or "", t.id))
    return sorted(objectives.values(), key=lambda o: o.id)
