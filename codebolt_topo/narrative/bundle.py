"""Git bundles (v2): writing a selection of threads, and reading one back strictly.

Written bundles are what ``git bundle create`` would write: the v2 signature, one ``-<id>`` line
per prerequisite (commits the receiver must already have), one ``<id> <ref>`` line per thread,
a blank line, then a pack. Incremental export sends exactly the objects the receiver lacks,
assuming it has every prerequisite: each commit's tree is diffed against its first parent's and
only differing entries are sent, so the cost follows the change, not the workspace.

Reading (:func:`read_bundle_header`) accepts v2 and v3 (``@object-format=sha1`` only) from a
stream, checks every header line and ref name, and leaves the pack in the stream for
:mod:`~codebolt_topo.narrative.receive` to copy to disk and verify.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from dulwich.objects import Commit, ObjectID, Tree

from codebolt_topo.narrative.errors import CorruptDataError, NarrativeError, UnsafeInputError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import check_ref_format, thread_ref, validate_id
from codebolt_topo.narrative.packs import object_header
from codebolt_topo.narrative.safety import MODE_DIR

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["BundleHeader", "Selection", "export_bundle", "read_bundle_header"]

_SIG_V2 = b"# v2 git bundle\n"
_SIG_V3 = b"# v3 git bundle\n"
_HEX = re.compile(rb"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class Selection:
    """What to export: some threads, every thread of some objectives, or (both empty) all.

    ``remotes`` adds the diverged copies kept side by side (``refs/narrative/remotes/...``) of
    the selected threads, under their own names: sync along a chain uses it so a copy that
    diverged at one hop still reaches the next one, namespaced by the environment it came from.
    """

    threads: frozenset[str] = field(default_factory=frozenset)
    objectives: frozenset[str] = field(default_factory=frozenset)
    remotes: bool = False

    @classmethod
    def thread(cls, *ids: str) -> Selection:
        return cls(threads=frozenset(validate_id(i, "thread id") for i in ids))

    @classmethod
    def objective(cls, *ids: str) -> Selection:
        return cls(objectives=frozenset(validate_id(i, "objective id") for i in ids))

    @classmethod
    def everything(cls, *, remotes: bool = False) -> Selection:
        return cls(remotes=remotes)


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """A bundle's prerequisites and refs, read and checked before its pack."""

    prerequisites: list[bytes]
    refs: dict[bytes, bytes]


def export_bundle(
    store: NarrativeStore, selection: Selection, have: frozenset[str] | set[str] = frozenset()
) -> bytes:
    """Bundle the selected threads; commits in *have* (and their history) are left out."""
    tips = _selected_tips(store, selection)
    if not tips:
        raise NarrativeError("nothing to export: no thread matches the selection")
    objects = store.repo.object_store
    known_have = {
        h.encode() for h in have if _HEX.fullmatch(h.encode()) and ObjectID(h.encode()) in objects
    }
    commits, boundary = _walk_commits(store, list(tips.values()), known_have)
    send: dict[bytes, None] = {}
    for commit in commits:
        send[commit.id] = None
        base = _parent_tree(store, commit)
        _new_objects(store, base, commit.tree, send)
    header = [_SIG_V2]
    for sha in sorted(boundary):
        header.append(b"-" + sha + b" " + _subject(store, sha) + b"\n")
    for ref, sha in sorted(tips.items()):
        header.append(sha + b" " + ref + b"\n")
    header.append(b"\n")
    return b"".join(header) + _pack(store, list(send))


def read_bundle_header(source: BinaryIO, limits: Limits) -> tuple[BundleHeader, bytes]:
    """Read and check a bundle's header from *source*; returns it and the pack's first bytes.

    The header is read in bounded pieces and refused past ``max_header_bytes``; the pack is
    left in *source* for :func:`~codebolt_topo.narrative.receive.spool_pack`.
    """
    data = b""
    while True:
        end = data.find(b"\n\n", len(_SIG_V2) - 1)
        if end >= 0 or len(data) > limits.max_header_bytes + len(_SIG_V2):
            break
        more = source.read(65536)
        if not more:
            break
        data += more
    if data.startswith(_SIG_V2):
        pos, v3 = len(_SIG_V2), False
    elif data.startswith(_SIG_V3):
        pos, v3 = len(_SIG_V3), True
    else:
        raise CorruptDataError("not a git bundle (missing v2/v3 signature)")
    if end < 0:
        check_limit("bundle header size", len(data), limits.max_header_bytes)
        raise CorruptDataError("truncated bundle: the header never ends")
    check_limit("bundle header size", end, limits.max_header_bytes)
    lines = data[pos:end].split(b"\n") if end >= pos else []
    check_limit("bundle header lines", len(lines), limits.max_refs)
    prerequisites: list[bytes] = []
    refs: dict[bytes, bytes] = {}
    for line in lines:
        if line.startswith(b"@"):
            if not v3 or line not in (b"@object-format=sha1",):
                raise CorruptDataError(f"unsupported bundle capability {line[:80]!r}")
        elif line.startswith(b"-"):
            sha = line[1:41]
            if not _HEX.fullmatch(sha) or line[41:42] not in (b"", b" "):
                raise CorruptDataError(f"malformed prerequisite line {line[:80]!r}")
            prerequisites.append(sha)
        else:
            sha, sep, ref = line.partition(b" ")
            if not _HEX.fullmatch(sha) or not sep:
                raise CorruptDataError(f"malformed ref line {line[:80]!r}")
            check_limit("ref name length", len(ref), limits.max_name_bytes)
            if ref != b"HEAD":
                check_ref_format(ref)
            if ref in refs:
                raise UnsafeInputError(f"ref {ref!r} appears twice in the bundle")
            refs[ref] = sha
    if not refs:
        raise CorruptDataError("bundle lists no refs")
    return BundleHeader(prerequisites, refs), data[end + 2 :]


def _selected_tips(store: NarrativeStore, selection: Selection) -> dict[bytes, bytes]:
    local = {ref.encode(): sha.encode() for ref, sha in store.heads().items()}
    every = {
        ref.encode(): sha.encode()
        for ref, sha in store.heads(include_remotes=selection.remotes).items()
    }
    if not selection.threads and not selection.objectives:
        return every
    wanted = {thread_ref(t) for t in selection.threads}
    missing = sorted(r.decode() for r in wanted - local.keys())
    if missing:
        raise NarrativeError(f"no such thread: {', '.join(missing)}")
    chosen: dict[bytes, bytes] = {}
    for ref, sha in every.items():
        commit = store.repo.object_store[ObjectID(sha)]
        meta = parse_message(commit.message) if isinstance(commit, Commit) else None
        if meta is None:
            continue
        if meta.objective_id in selection.objectives or thread_ref(meta.thread_id) in wanted:
            chosen[ref] = sha
    return chosen


def _walk_commits(
    store: NarrativeStore, tips: list[bytes], have: set[bytes]
) -> tuple[list[Commit], set[bytes]]:
    """Commits reachable from *tips* but not from *have*, parents before children."""
    seen: set[bytes] = set()
    boundary: set[bytes] = set()
    order: list[Commit] = []
    stack = list(tips)
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        if sha in have:
            boundary.add(sha)
            continue
        commit = store.repo.object_store[ObjectID(sha)]
        assert isinstance(commit, Commit)
        order.append(commit)
        stack.extend(commit.parents)
    order.reverse()
    return order, boundary


def _parent_tree(store: NarrativeStore, commit: Commit) -> bytes | None:
    if not commit.parents:
        return None
    parent = store.repo.object_store[commit.parents[0]]
    assert isinstance(parent, Commit)
    return bytes(parent.tree)


def _new_objects(
    store: NarrativeStore, old: bytes | None, new: bytes, out: dict[bytes, None]
) -> None:
    """Add tree *new* and everything under it that tree *old* does not hold at the same path."""
    if old == new or new in out:
        return
    out[new] = None
    objects = store.repo.object_store
    tree = objects[ObjectID(new)]
    assert isinstance(tree, Tree)
    before: dict[bytes, tuple[int, bytes]] = {}
    if old is not None:
        old_tree = objects[ObjectID(old)]
        assert isinstance(old_tree, Tree)
        before = {name: (mode, sha) for name, mode, sha in old_tree.iteritems()}
    for name, mode, sha in tree.iteritems():
        prior = before.get(name)
        if prior is not None and prior[1] == sha:
            continue
        if mode == MODE_DIR:
            _new_objects(store, prior[1] if prior and prior[0] == MODE_DIR else None, sha, out)
        else:
            out[sha] = None


def _subject(store: NarrativeStore, sha: bytes) -> bytes:
    commit = store.repo.object_store[ObjectID(sha)]
    if not isinstance(commit, Commit):
        return b""
    return bytes(commit.message).split(b"\n", 1)[0][:200].replace(b"\r", b"")


def _pack(store: NarrativeStore, shas: list[bytes]) -> bytes:
    """A pack of whole objects (no deltas), as git would accept from any peer."""
    objects = store.repo.object_store
    chunks = [b"PACK", (2).to_bytes(4, "big"), len(shas).to_bytes(4, "big")]
    for sha in shas:
        type_num, raw = objects.get_raw(ObjectID(sha))
        chunks.append(object_header(type_num, len(raw)))
        chunks.append(zlib.compress(raw, 1))
    body = b"".join(chunks)
    return body + hashlib.sha1(body).digest()
