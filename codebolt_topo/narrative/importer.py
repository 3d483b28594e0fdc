"""Verify received objects and refs, then move refs: the shared back half of every import.

Order of operations, which is the whole point of this module:

1. every check that can fail runs first, on what the import keeps beside its temporary pack
   (:mod:`~codebolt_topo.narrative.incoming`): ref names, prerequisites present, every tree
   entry (name, mode, no ``.git``, git's order), every commit's narrative metadata, every
   referenced object present in the pack or the store, every tip a commit of the thread its ref
   names, and every received snapshot within the limits with no symlink leading outside
   (:mod:`~codebolt_topo.narrative.bounds`);
2. only then, when the store lacks any of the objects, is the temporary pack installed (a
   bundle's pack as it came, a tarball's as it was written); objects without refs are
   invisible, so a crash here changes nothing anyone can see, and a refusal leaves nothing;
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

from binascii import hexlify, unhexlify
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.errors import ObjectFormatException
from dulwich.objects import Commit, ObjectID, ShaFile
from dulwich.refs import Ref

from codebolt_topo.narrative.bounds import SnapshotBounds
from codebolt_topo.narrative.errors import (
    CorruptDataError,
    HierarchyError,
    MissingPrerequisiteError,
    NarrativeError,
    UnsafeInputError,
)
from codebolt_topo.narrative.incoming import Incoming
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import (
    REMOTES_PREFIX,
    parse_remote_thread_ref,
    parse_thread_ref,
    remote_thread_ref,
    thread_ref,
    validate_id,
)
from codebolt_topo.narrative.presence import StorePresence
from codebolt_topo.narrative.safety import MODE_DIR
from codebolt_topo.narrative.trees import check_tree_entry

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["ImportReport", "RefChange", "import_objects"]

Getter = Callable[[bytes], ShaFile | None]
_COMMIT, _TREE, _BLOB = 1, 2, 3
_TYPE_WORDS = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


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
    pack_dir = store.repo.object_store.pack_dir
    with StorePresence(pack_dir) as present:
        missing = sorted(p.decode() for p in set(prerequisites) if unhexlify(p) not in present)
        if missing:
            raise MissingPrerequisiteError(missing)
        received = _Received(store, incoming, present)
        received.check_all()
        for ref, (thread, sha) in threads.items():
            tip = received.get(sha)
            if not isinstance(tip, Commit):
                raise CorruptDataError(f"{ref.decode()} points at {sha.decode()}, not a commit")
            meta = parse_message(tip.message)
            if meta is None or meta.thread_id != thread:
                raise HierarchyError(f"{ref.decode()} points at a commit of another thread")
        bounds = SnapshotBounds(store, incoming)
        for index in range(incoming.sent):  # every snapshot received, not only the tips
            if incoming.table.types[index] == _COMMIT:
                tree = unhexlify(received.parse(index).tree)
                bounds.check(tree, f"snapshot {hexlify(incoming.table.sha(index)).decode()}")
    with store.locked(), StorePresence(pack_dir) as present:
        received.present = present
        report, moves = _plan(store, threads, source_env, received.get)
        table = incoming.table
        new = sum(1 for i in table.unique() if i < incoming.sent and table.sha(i) not in present)
        if new:
            incoming.install()
        bounds.save()
        report.objects_written = new
        _move_refs(store, moves)
    return report


class _Received:
    """The checks on what an import received, and commit lookups for planning the refs."""

    def __init__(self, store: NarrativeStore, incoming: Incoming, present: StorePresence) -> None:
        self.store = store
        self.incoming = incoming
        self.present = present
        self._commits: dict[bytes, Commit] = {}

    def check_all(self) -> None:
        """Check every received tree and commit (read back one at a time, kept nowhere)."""
        incoming, table = self.incoming, self.incoming.table
        for index in range(incoming.sent):
            type_num = table.types[index]
            if type_num == _TREE:
                self._check_tree(index)
            elif type_num == _COMMIT:
                commit = self.parse(index)
                if parse_message(commit.message) is None:
                    raise HierarchyError(
                        f"commit {commit.id.decode()} carries no narrative metadata"
                    )
                self._require(bytes(commit.tree), _TREE, "tree")
                for parent in commit.parents:
                    self._require(bytes(parent), _COMMIT, "parent commit")
            elif type_num != _BLOB:
                word = _TYPE_WORDS.get(type_num, str(type_num))
                raise UnsafeInputError(f"unexpected {word} object {table.sha(index).hex()}")

    def get(self, sha: bytes) -> ShaFile | None:
        """A commit by hex id, received or in the store (``None`` when neither has it)."""
        found = self._commits.get(sha)
        if found is not None:
            return found
        binary = unhexlify(sha)
        index = self.incoming.table.find(binary)
        if 0 <= index < self.incoming.sent:
            if self.incoming.table.types[index] != _COMMIT:
                return None
            commit = self.parse(index)
            if len(self._commits) < 4096:
                self._commits[sha] = commit
            return commit
        return self.store.repo.object_store[ObjectID(sha)] if binary in self.present else None

    def parse(self, index: int) -> Commit:
        """Received commit *index*, parsed from where the import kept it."""
        hex_sha = hexlify(self.incoming.table.sha(index))
        try:
            commit = ShaFile.from_raw_string(
                _COMMIT, self.incoming.content(index), ObjectID(hex_sha)
            )
        except (ObjectFormatException, ValueError) as exc:
            raise CorruptDataError(f"malformed object {hex_sha.decode()}: {exc}") from exc
        assert isinstance(commit, Commit)
        return commit

    def _check_tree(self, index: int) -> None:
        limits, previous = self.store.limits, b""
        for name, mode, sha in self.incoming.tree(index):
            previous = check_tree_entry(name, mode, previous, limits)
            self._require_binary(sha, _TREE if mode == MODE_DIR else _BLOB, f"entry {name!r}")

    def _require(self, hex_sha: bytes, type_num: int, what: str) -> None:
        self._require_binary(unhexlify(hex_sha), type_num, what)

    def _require_binary(self, sha: bytes, type_num: int, what: str) -> None:
        table = self.incoming.table
        index = table.find(sha)
        if index < 0:
            if sha not in self.present:
                raise CorruptDataError(f"incomplete archive: {what} {sha.hex()} is missing")
        elif table.types[index] != type_num:
            raise CorruptDataError(f"{what} {sha.hex()} has the wrong type")


def _thread_refs(refs: dict[bytes, bytes], copies: bool) -> dict[bytes, tuple[str, bytes]]:
    threads = {ref: (_ref_thread(ref, copies), sha) for ref, sha in refs.items() if ref != b"HEAD"}
    if not threads:
        raise UnsafeInputError("the archive carries no narrative thread refs")
    return threads


def _ref_thread(ref: bytes, copies: bool) -> str:
    if copies and ref.startswith(REMOTES_PREFIX):
        return parse_remote_thread_ref(ref)[1]
    return parse_thread_ref(ref)


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
