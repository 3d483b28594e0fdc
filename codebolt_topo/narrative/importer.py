"""Verify received objects and refs, then move refs: the shared back half of every import.

Order of operations, which is the whole point of this module:

1. every check that can fail runs first, in memory: ref names, prerequisites present, every tree
   entry (name, mode, no ``.git``), every commit's narrative metadata, every referenced object
   present in the bundle or the store, every tip a commit of the thread its ref names;
2. only then, when the store lacks any of them, are the objects written as one pack (a bundle's
   pack as it came, a tarball's objects as a new one); objects without refs are invisible, so a
   crash here changes nothing anyone can see;
3. finally refs move: fast-forwards and new threads directly; a thread whose local tip is not an
   ancestor of the incoming one is *diverged* and the incoming tip is kept beside it under
   ``refs/narrative/remotes/<source-env>/threads/<id>``, never over it.

A bundle may also carry such side-by-side copies (sync re-exports them so they travel along a
chain); they are accepted only when the caller opts in (``copies=True``), because the origin in
their name is the sender's claim, a trust sync grants its edges and a plain import does not.
``refs/narrative/remotes/<origin>/threads/<id>`` keeps its name, so the copy stays namespaced
by the environment that diverged, and moves only forward. A copy whose commits the local thread
already holds is unchanged; one that conflicts with the copy we keep from the same
origin (possible only when that origin's history was wiped) is kept under
``<origin>.via.<source-env>``, and if even that conflicts it is skipped and reported.

Nothing received is ever executed: no hooks run and no configuration is read from a peer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref

from codebolt_topo.narrative.errors import (
    CorruptDataError,
    HierarchyError,
    MissingPrerequisiteError,
    NarrativeError,
    UnsafeInputError,
)
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import (
    REMOTES_PREFIX,
    parse_remote_thread_ref,
    parse_thread_ref,
    remote_thread_ref,
    thread_ref,
    validate_id,
)
from codebolt_topo.narrative.packs import write_pack
from codebolt_topo.narrative.safety import ALLOWED_MODES, MODE_DIR, check_entry_name

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["ImportReport", "Incoming", "RefChange", "import_objects"]

Getter = Callable[[bytes], ShaFile | None]


@dataclass(frozen=True, slots=True)
class RefChange:
    """What happened to one thread. For a diverged thread ``ref`` is the side-by-side ref."""

    thread: str
    ref: str
    old: str | None
    new: str


@dataclass(slots=True)
class ImportReport:
    """Outcome of one import, thread by thread."""

    created: list[RefChange] = field(default_factory=list)
    updated: list[RefChange] = field(default_factory=list)
    diverged: list[RefChange] = field(default_factory=list)
    unchanged: list[RefChange] = field(default_factory=list)
    skipped: list[RefChange] = field(default_factory=list)
    """Side-by-side copies that conflict with every name we could keep them under."""
    objects_written: int = 0

    @property
    def changed(self) -> bool:
        """False when the import was a no-op (same bundle twice, or nothing new)."""
        return bool(self.created or self.updated or self.diverged or self.objects_written)


@dataclass(frozen=True, slots=True)
class Incoming:
    """Objects received from a peer, in the form the checks need, and how to store them.

    ``kinds`` names every object received (hex id -> type number); ``parsed`` holds the ones the
    checks look inside (commits, trees, tags; blobs need not be materialised); ``write`` stores
    them, given the ids the store lacks (never called when it lacks none).
    """

    kinds: Mapping[bytes, int]
    parsed: Mapping[bytes, ShaFile]
    write: Callable[[list[bytes]], object]

    @classmethod
    def of_objects(cls, objects: list[ShaFile], pack_dir: str | os.PathLike[str]) -> Incoming:
        """Objects built in memory (a tarball's), written as one new pack of those missing."""
        by_id = {bytes(obj.id): obj for obj in objects}
        return cls(
            kinds={sha: obj.type_num for sha, obj in by_id.items()},
            parsed={sha: obj for sha, obj in by_id.items() if not isinstance(obj, Blob)},
            write=lambda new: write_pack(pack_dir, [by_id[sha] for sha in new]),
        )


def import_objects(
    store: NarrativeStore,
    incoming: Incoming,
    refs: dict[bytes, bytes],
    prerequisites: Iterable[bytes],
    source_env: str,
    *,
    copies: bool = False,
) -> ImportReport:
    """Verify *incoming* and *refs* against *store*, then store them (see the module docstring).

    *copies* accepts side-by-side copies (``refs/narrative/remotes/...``) from the sender.
    """
    validate_id(source_env, "source environment")
    threads = _thread_refs(refs, copies)
    odb = store.repo.object_store
    present = _presence(store)
    missing = sorted(p.decode() for p in set(prerequisites) if not present(p))
    if missing:
        raise MissingPrerequisiteError(missing)
    parsed = incoming.parsed

    def get(sha: bytes) -> ShaFile | None:
        found = parsed.get(sha)
        if found is not None:
            return found
        return odb[ObjectID(sha)] if present(sha) else None

    for obj in parsed.values():
        _check_object(store, obj, incoming.kinds, present)
    for ref, (thread, sha) in threads.items():
        tip = get(sha)
        if not isinstance(tip, Commit):
            raise CorruptDataError(f"{ref.decode()} points at {sha.decode()}, not a commit")
        meta = parse_message(tip.message)
        if meta is None or meta.thread_id != thread:
            raise HierarchyError(f"{ref.decode()} points at a commit of another thread")
    with store.locked():
        report, moves = _plan(store, threads, source_env, get)
        present = _presence(store)
        new = [sha for sha in incoming.kinds if not present(sha)]
        if new:
            incoming.write(new)
        report.objects_written = len(new)
        _move_refs(store, moves)
    return report


def _thread_refs(refs: dict[bytes, bytes], copies: bool) -> dict[bytes, tuple[str, bytes]]:
    threads = {ref: (_ref_thread(ref, copies), sha) for ref, sha in refs.items() if ref != b"HEAD"}
    if not threads:
        raise UnsafeInputError("the archive carries no narrative thread refs")
    return threads


def _ref_thread(ref: bytes, copies: bool) -> str:
    if copies and ref.startswith(REMOTES_PREFIX):
        return parse_remote_thread_ref(ref)[1]
    return parse_thread_ref(ref)


def _presence(store: NarrativeStore) -> Callable[[bytes], bool]:
    """A membership test over the store's packs as they are now.

    The shadow repository only ever receives packs (never loose objects), and asking dulwich's
    store directly rescans the pack directory on every miss, which dominates a large import.
    """
    packs = store.repo.object_store.packs

    def present(sha: bytes) -> bool:
        return any(ObjectID(sha) in pack for pack in packs)

    return present


def _check_object(
    store: NarrativeStore,
    obj: ShaFile,
    kinds: Mapping[bytes, int],
    present: Callable[[bytes], bool],
) -> None:
    def require(sha: bytes, kind: type[ShaFile], what: str) -> None:
        found = kinds.get(sha)
        if found is None and not present(sha):
            raise CorruptDataError(f"incomplete archive: {what} {sha.decode()} is missing")
        if found is not None and found != kind.type_num:
            raise CorruptDataError(f"{what} {sha.decode()} has the wrong type")

    if isinstance(obj, Tree):
        for name, mode, sha in obj.iteritems():
            check_entry_name(name, store.limits)
            if mode not in ALLOWED_MODES:
                raise UnsafeInputError(f"unsupported mode {mode:o} for {name!r}")
            require(sha, Tree if mode == MODE_DIR else Blob, f"entry {name!r}")
    elif isinstance(obj, Commit):
        if parse_message(obj.message) is None:
            raise HierarchyError(f"commit {obj.id.decode()} carries no narrative metadata")
        require(obj.tree, Tree, "tree")
        for parent in obj.parents:
            require(parent, Commit, "parent commit")
    else:
        raise UnsafeInputError(f"unexpected {obj.type_name.decode()} object {obj.id.decode()}")


def _plan(
    store: NarrativeStore,
    threads: dict[bytes, tuple[str, bytes]],
    source_env: str,
    get: Getter,
) -> tuple[ImportReport, list[tuple[bytes, bytes | None, bytes]]]:
    report = ImportReport()
    moves: list[tuple[bytes, bytes | None, bytes]] = []
    current = store.repo.refs.as_dict()
    for ref, (thread, new) in sorted(threads.items()):
        if ref.startswith(REMOTES_PREFIX):
            _plan_copy(store, ref, thread, new, source_env, current, get, report, moves)
            continue
        local = current.get(Ref(ref))
        change = RefChange(thread, ref.decode(), local.decode() if local else None, new.decode())
        if local is None:
            report.created.append(change)
            moves.append((ref, None, new))
        elif local == new or _is_ancestor(store, new, local, get):
            report.unchanged.append(change)
        elif _is_ancestor(store, local, new, get):
            report.updated.append(change)
            moves.append((ref, local, new))
        else:
            side = remote_thread_ref(source_env, thread)
            old_side = current.get(Ref(side))
            side_change = RefChange(
                thread, side.decode(), old_side.decode() if old_side else None, new.decode()
            )
            if old_side == new:
                report.unchanged.append(side_change)
            else:
                report.diverged.append(side_change)
                moves.append((side, old_side, new))
    return report, moves


def _plan_copy(
    store: NarrativeStore,
    ref: bytes,
    thread: str,
    new: bytes,
    source_env: str,
    current: dict[Ref, ObjectID],
    get: Getter,
    report: ImportReport,
    moves: list[tuple[bytes, bytes | None, bytes]],
) -> None:
    """Plan one incoming side-by-side copy (see the module docstring)."""
    origin, _ = parse_remote_thread_ref(ref)
    own = current.get(Ref(thread_ref(thread)))
    candidates = [ref]
    nested = f"{origin}.via.{source_env}"
    if origin != source_env and len(nested) <= 127:
        candidates.append(remote_thread_ref(nested, thread))
    for name in candidates:
        held = current.get(Ref(name))
        change = RefChange(thread, name.decode(), held.decode() if held else None, new.decode())
        known = [tip for tip in (held, own) if tip is not None]
        if any(tip == new or _is_ancestor(store, new, tip, get) for tip in known):
            report.unchanged.append(change)
            return
        if held is None or _is_ancestor(store, held, new, get):
            (report.updated if held else report.created).append(change)
            moves.append((name, held, new))
            return
    report.skipped.append(RefChange(thread, ref.decode(), None, new.decode()))


def _is_ancestor(store: NarrativeStore, ancestor: bytes, descendant: bytes, get: Getter) -> bool:
    """True when *ancestor* is reachable from *descendant* (both in the index or the store)."""
    seen: set[bytes] = set()
    stack = [descendant]
    while stack:
        sha = stack.pop()
        if sha == ancestor:
            return True
        if sha in seen:
            continue
        seen.add(sha)
        commit = get(sha)
        if isinstance(commit, Commit):
            stack.extend(bytes(p) for p in commit.parents)
    return False


def _move_refs(store: NarrativeStore, moves: list[tuple[bytes, bytes | None, bytes]]) -> None:
    """Compare-and-swap each ref; a ref moved by someone else meanwhile aborts the rest."""
    refs = store.repo.refs
    for ref, old, new in moves:
        if old is None:
            done = refs.add_if_new(Ref(ref), ObjectID(new))
        else:
            done = refs.set_if_equals(Ref(ref), ObjectID(old), ObjectID(new))
        if not done:
            raise NarrativeError(f"{ref.decode()} changed during the import; retry")
