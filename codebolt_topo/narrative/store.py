"""NarrativeStore: one workspace's shadow repository, snapshots and restores.

Layout of the state directory (never inside the workspace)::

    shadow.git/      bare repository (dulwich); refs/narrative/threads/<id> per thread
    statcache        what the last snapshot/restore saw (see statcache.py)
    workspace.json   the tree the workspace held after the last snapshot or restore
    measures.sqlite  files, depth and symlink reach of every tree measured (see measure.py)
    lock             flock held by every operation that writes

The user's own ``.git`` is never opened for writing: only ``.git/info/exclude`` is read, for its
ignore patterns. Transfer lives in :mod:`~codebolt_topo.narrative.bundle`, ``tarball``, ``receive``,
``incoming`` and ``importer``; what a snapshot may become on disk in ``bounds``.
"""

from __future__ import annotations

import binascii
import fcntl
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dulwich.objects import Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from codebolt_topo.narrative.bounds import SnapshotBounds
from codebolt_topo.narrative.bundle import Selection, export_bundle, read_bundle_header
from codebolt_topo.narrative.checkout import apply_changes, bounded_changes, diff_trees
from codebolt_topo.narrative.errors import (
    DirtyWorkspaceError,
    HierarchyError,
    NarrativeError,
    UnknownSnapshotError,
)
from codebolt_topo.narrative.hierarchy import (
    ObjectiveLog,
    SnapshotInfo,
    build_log,
    first_parent_history,
    snapshot_info,
)
from codebolt_topo.narrative.importer import ImportReport, import_objects
from codebolt_topo.narrative.incoming import Incoming
from codebolt_topo.narrative.limits import Limits
from codebolt_topo.narrative.measure import MeasureCache
from codebolt_topo.narrative.metadata import SnapshotMeta, format_message, parse_message
from codebolt_topo.narrative.names import (
    REMOTES_PREFIX,
    THREADS_PREFIX,
    parse_remote_thread_ref,
    thread_ref,
    validate_id,
)
from codebolt_topo.narrative.packs import bulk_allocation, write_pack
from codebolt_topo.narrative.presence import StorePresence
from codebolt_topo.narrative.receive import receive_pack, spool_pack
from codebolt_topo.narrative.scan import scan_workspace
from codebolt_topo.narrative.statcache import StatCache
from codebolt_topo.narrative.tarball import export_tar, import_tar

__all__ = ["NarrativeStore"]

EMPTY_TREE = b"4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class NarrativeStore:
    """Snapshots of one workspace, kept in a shadow repository under *state_dir*.

    Open with :meth:`open` and close (or use as a context manager) when done. One store may be
    used from several processes: every writing operation holds an exclusive lock.
    """

    def __init__(self, state_dir: Path, workspace: Path, environment: str, limits: Limits) -> None:
        self.state_dir = state_dir
        self.workspace = workspace
        self.environment = environment
        self.limits = limits
        git_dir = state_dir / "shadow.git"
        if not git_dir.exists():
            Repo.init_bare(str(git_dir), mkdir=True).close()
        self.repo = Repo(str(git_dir))
        self._measures: MeasureCache | None = None

    @classmethod
    def open(
        cls,
        state_dir: str | os.PathLike[str],
        workspace: str | os.PathLike[str],
        environment: str,
        *,
        limits: Limits | None = None,
    ) -> NarrativeStore:
        """Open (creating if needed) the store for *workspace* under *state_dir*."""
        validate_id(environment, "environment")
        ws = Path(workspace).resolve()
        state = Path(state_dir).resolve()
        if not ws.is_dir():
            raise NarrativeError(f"workspace {ws} is not a directory")
        if state == ws or state.is_relative_to(ws):
            raise NarrativeError(f"state directory {state} must live outside the workspace {ws}")
        state.mkdir(parents=True, exist_ok=True)
        return cls(state, ws, environment, limits or Limits())

    def close(self) -> None:
        """Release the repository's open pack files and the measure cache."""
        self.repo.close()
        if self._measures is not None:
            self._measures.close()
            self._measures = None

    @property
    def measures(self) -> MeasureCache:
        """Figures (files, depth, symlink reach) of the trees measured so far, by tree id."""
        if self._measures is None:
            self._measures = MeasureCache(self.state_dir / "measures.sqlite")
        return self._measures

    def __enter__(self) -> NarrativeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (every writing operation takes it)."""
        with open(self.state_dir / "lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def snapshot(
        self,
        objective: str,
        thread: str,
        run: str,
        *,
        name: str = "",
        message: str = "",
        objective_name: str | None = None,
        thread_name: str | None = None,
        run_name: str | None = None,
    ) -> SnapshotInfo:
        """Record the workspace as a new snapshot at the tip of *thread*.

        Names default to those of the thread's previous snapshot, else to the ids. A thread
        belongs to one objective: snapshotting it under another raises :class:`HierarchyError`.
        """
        for value, what in ((objective, "objective id"), (thread, "thread id"), (run, "run id")):
            validate_id(value, what)
        ref = thread_ref(thread)
        with self.locked():
            parent = self.repo.refs.as_dict().get(Ref(ref))
            previous = parse_message(self._commit(parent).message) if parent else None
            if previous is not None and previous.objective_id != objective:
                raise HierarchyError(
                    f"thread {thread!r} belongs to objective {previous.objective_id!r}"
                )
            cache = StatCache.load(self._path("statcache"))
            started = time.time_ns()
            with bulk_allocation():
                scan = scan_workspace(self.workspace, cache)
            now = datetime.now(UTC)
            meta = SnapshotMeta(
                objective_id=objective,
                objective_name=_pick(
                    objective_name,
                    previous.objective_name if previous else self._objective_name(objective),
                    objective,
                ),
                thread_id=thread,
                thread_name=_pick(thread_name, previous and previous.thread_name, thread),
                run_id=run,
                run_name=_pick(
                    run_name, previous and previous.run_id == run and previous.run_name, run
                ),
                snapshot_id=f"{started:x}{secrets.token_hex(4)}",
                snapshot_name=name or now.strftime("%Y-%m-%d %H:%M:%S"),
                environment=self.environment,
                time=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            )
            commit = Commit()
            commit.tree = ObjectID(scan.root_tree)
            commit.parents = [parent] if parent else []
            commit.author = commit.committer = self._identity()
            commit.author_time = commit.commit_time = int(now.timestamp())
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = format_message(meta, message)
            with bulk_allocation():
                write_pack(self.repo.object_store.pack_dir, [*scan.new_objects, commit])
            if not self.repo.refs.set_if_equals(Ref(ref), parent, commit.id):
                raise NarrativeError(f"thread {thread!r} moved during the snapshot; retry")
            cache.files, cache.dirs, cache.scan_start_ns = scan.files, scan.dirs, started
            cache.save(self._path("statcache"))
            self._save_base(scan.root_tree)
        info = snapshot_info(commit)
        assert info is not None
        return info

    def heads(self, *, include_remotes: bool = False) -> dict[str, str]:
        """Local thread refs and their tips: what a peer sends as ``have`` for incremental sync.

        ``include_remotes`` adds the diverged copies kept side by side: a receiver that already
        holds such a copy sends it too, so a re-export along a chain stays incremental.
        """
        refs = self.repo.refs.as_dict(Ref(THREADS_PREFIX.rstrip(b"/")))
        heads = {(THREADS_PREFIX + name).decode(): sha.decode() for name, sha in refs.items()}
        if include_remotes:
            remotes = self.repo.refs.as_dict(Ref(REMOTES_PREFIX.rstrip(b"/")))
            heads.update({(REMOTES_PREFIX + n).decode(): s.decode() for n, s in remotes.items()})
        return heads

    def have(self, recent: int = 32) -> list[str]:
        """Commits a receiver reports so a sender can export incrementally.

        The tips alone are not enough: when the receiver has moved a thread on since the last
        exchange, the sender does not know the new tip and would send everything again. So this
        lists, for every thread and diverged copy, the *recent* newest commits along first
        parents and then every 2^k-th one further back (like git's negotiation), which keeps the
        list short for long threads while the sender still finds a recent common commit.
        """
        found: set[str] = set()
        for tip in self.heads(include_remotes=True).values():
            for depth, commit in enumerate(
                first_parent_history(self.repo.object_store, tip.encode())
            ):
                if depth < recent or (depth & (depth - 1)) == 0:
                    found.add(commit.id.decode())
        return sorted(found)

    def log(self) -> list[ObjectiveLog]:
        """The hierarchy: objectives, their threads (and diverged copies), runs and snapshots."""
        threads: list[tuple[bytes, bytes, str | None]] = [
            (ref.encode(), sha.encode(), None) for ref, sha in self.heads().items()
        ]
        remotes = self.repo.refs.as_dict(Ref(REMOTES_PREFIX.rstrip(b"/")))
        for name, sha in remotes.items():
            env, _tid = parse_remote_thread_ref(REMOTES_PREFIX + name)
            threads.append((REMOTES_PREFIX + name, sha, env))
        return build_log(self.repo.object_store, threads)

    def find(self, key: str) -> SnapshotInfo:
        """Find a snapshot by snapshot id, full commit id or unique commit-id prefix (≥ 7)."""
        matches: dict[str, SnapshotInfo] = {}
        for tip in {*self.heads().values(), *(s.decode() for s in self._remote_tips())}:
            for commit in first_parent_history(self.repo.object_store, tip.encode()):
                info = snapshot_info(commit)
                if info is None:
                    continue
                if info.snapshot_id == key or (len(key) >= 7 and info.commit.startswith(key)):
                    matches[info.commit] = info
        if len(matches) != 1:
            problem = "is ambiguous" if matches else "matches no snapshot"
            raise UnknownSnapshotError(f"{key!r} {problem}")
        return next(iter(matches.values()))

    def dirty_paths(self) -> list[str]:
        """Files changed since the last snapshot or restore (what restore refuses to clobber)."""
        scan = scan_workspace(self.workspace, StatCache.load(self._path("statcache")))
        get = self._lookup(scan.new_objects)
        changes = diff_trees(get, self._load_base(), scan.root_tree)
        return [path.decode("utf-8", "replace") for path, _old, _new in changes]

    def restore(self, snapshot: str, *, force: bool = False) -> SnapshotInfo:
        """Make the workspace (all but ignored files) equal to *snapshot*.

        Refuses with :class:`DirtyWorkspaceError` when files changed since the last snapshot or
        restore, unless *force*, which discards those changes.
        """
        with self.locked():
            info = self.find(snapshot)
            cache = StatCache.load(self._path("statcache"))
            scanned_at = time.time_ns()
            scan = scan_workspace(self.workspace, cache)
            get = self._lookup(scan.new_objects)
            if not force:
                dirty = list(diff_trees(get, self._load_base(), scan.root_tree))
                if dirty:
                    raise DirtyWorkspaceError([p.decode("utf-8", "replace") for p, _o, _n in dirty])
            bounds = SnapshotBounds(self)
            bounds.check(info.tree.encode(), f"snapshot {info.snapshot_id}")
            bounds.save()
            changes = bounded_changes(get, scan.root_tree, info.tree.encode(), self.limits)
            root = os.fsencode(self.workspace)
            apply_changes(root, get, changes, force=force, limits=self.limits)
            started = time.time_ns()
            cache.files, cache.dirs, cache.scan_start_ns = scan.files, scan.dirs, scanned_at
            after = scan_workspace(self.workspace, cache)
            cache.files, cache.dirs, cache.scan_start_ns = after.files, after.dirs, started
            cache.save(self._path("statcache"))
            self._save_base(after.root_tree)
        return info

    def export_bundle(
        self, selection: Selection | None = None, have: Iterable[str] = frozenset()
    ) -> bytes:
        """A v2 git bundle of *selection* (default: every thread), incremental against *have*.

        *have* is what the receiver already holds (its :meth:`heads` values); commits in it that
        this store knows become the bundle's prerequisites, the rest are ignored.
        """
        return export_bundle(self, selection or Selection.everything(), frozenset(have))

    def import_bundle(
        self, source: bytes | BinaryIO, source_env: str, *, copies: bool = False
    ) -> ImportReport:
        """Verify, then import a bundle received from *source_env* (ours or ``git bundle``'s).

        *source* is the bundle or a stream of it (read in bounded pieces: the pack goes to a
        temporary file as it arrives, never into memory). *copies* also accepts the diverged
        copies a sender exported with ``Selection(remotes=True)``, keeping their origin's name
        (sync does; a plain import refuses them).

        When the store lacks any of its objects, the bundle's pack is kept as it came, indexed
        once (see :mod:`~codebolt_topo.narrative.receive`), like ``git fetch``: objects we
        already held stay in it as harmless duplicates rather than costing a re-encoding.
        """
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        header, first = read_bundle_header(stream, self.limits)
        odb = self.repo.object_store
        with bulk_allocation(), Incoming(odb.pack_dir, self.limits) as incoming:
            spool_pack(stream, first, incoming, self.limits)
            with StorePresence(odb.pack_dir) as present:

                def external(sha: bytes) -> tuple[int, bytes] | None:
                    if binascii.unhexlify(sha) not in present:
                        return None
                    type_num, raw = odb.get_raw(ObjectID(sha))
                    return type_num, bytes(raw)

                receive_pack(incoming, self.limits, external)
            return import_objects(
                self, incoming, header.refs, header.prerequisites, source_env, copies=copies
            )

    def export_tar(self, snapshot: str, out: BinaryIO | None = None) -> bytes:
        """One snapshot as tar.gz: ``manifest.json`` (hierarchy, commit) then ``files/...``.

        Written to *out* when given (then ``b""`` is returned), else returned.
        """
        if out is not None:
            export_tar(self, self.find(snapshot), out)
            return b""
        buffer = io.BytesIO()
        export_tar(self, self.find(snapshot), buffer)
        return buffer.getvalue()

    def import_tar(self, source: bytes | BinaryIO, source_env: str | None = None) -> ImportReport:
        """Verify, then import a snapshot tarball (or a stream of one) as a snapshot of its
        thread; read in bounded pieces, like :meth:`import_bundle`."""
        with bulk_allocation():
            return import_tar(self, source, source_env)

    def _commit(self, sha: bytes) -> Commit:
        obj = self.repo.object_store[ObjectID(sha)]
        if not isinstance(obj, Commit):
            raise UnknownSnapshotError(f"{sha!r} is not a commit")
        return obj

    def _objective_name(self, objective: str) -> str | None:
        """The name another thread of *objective* already gave it (new threads inherit it)."""
        for tip in self.heads().values():
            meta = parse_message(self._commit(tip.encode()).message)
            if meta is not None and meta.objective_id == objective:
                return meta.objective_name
        return None

    def _remote_tips(self) -> list[bytes]:
        return list(self.repo.refs.as_dict(Ref(REMOTES_PREFIX.rstrip(b"/"))).values())

    def _lookup(self, extra: list[ShaFile]) -> Callable[[bytes], ShaFile]:
        # The empty tree is the base of a store that never restored or snapshotted; it is
        # in no pack (a restore into a fresh store's non-empty workspace raised KeyError).
        overlay = {ObjectID(EMPTY_TREE): Tree(), **{obj.id: obj for obj in extra}}
        store = self.repo.object_store

        def get(sha: bytes) -> ShaFile:
            found = overlay.get(ObjectID(sha))
            return found if found is not None else store[ObjectID(sha)]

        return get

    def _identity(self) -> bytes:
        return f"{self.environment} <{self.environment}@narrative.invalid>".encode()

    def _path(self, name: str) -> Path:
        return self.state_dir / name

    def _load_base(self) -> bytes:
        try:
            data = json.loads(self._path("workspace.json").read_text())
            return str(data["base_tree"]).encode()
        except (OSError, ValueError, KeyError, TypeError):
            return EMPTY_TREE

    def _save_base(self, tree: bytes) -> None:
        tmp = self._path("workspace.json.tmp")
        tmp.write_text(json.dumps({"base_tree": tree.decode()}))
        os.replace(tmp, self._path("workspace.json"))


def _pick(explicit: str | None, inherited: object, default: str) -> str:
    """The explicit name, else the inherited one (when it is a non-empty string), else the id."""
    if explicit:
        return explicit
    return inherited if isinstance(inherited, str) and inherited else default
