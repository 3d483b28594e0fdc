"""One snapshot as a tar.gz: ``manifest.json`` first, then the files under ``files/``.

The manifest carries everything needed to rebuild the exact commit (tree, parents, author,
committer, times, full message with its hierarchy trailers), a readable copy of the hierarchy
and the number of files::

    {"format": "codebolt-narrative-snapshot", "version": 2, "commit": "...", "tree": "...",
     "parents": [...], "author": "...", "committer": "...", "author_time": 0, "commit_time": 0,
     "author_timezone": 0, "commit_timezone": 0, "message": "...",
     "hierarchy": {"objective": {"id": "...", "name": "..."}, "thread": {...}, "run": {...},
                   "snapshot": {...}, "environment": "...", "time": "..."},
     "files": 2}

Files follow depth first, names sorted within each directory; a member's mode says whether it
is executable, a symlink member is a link. Version 1 manifests also listed every file (path,
mode, blob id, size), which made a 50,000-file manifest 6 MB, past the manifest limit its own
import applied; version 2 manifests do not grow with the snapshot, and version 1 is still read
(its list is checked member by member).

Import streams: each member is checked (no ``..``, absolute paths, ``.git``, links leading
outside by :func:`~codebolt_topo.narrative.safety.check_link`, hard links, devices, FIFOs or
setuid bits; sizes and counts within :class:`~codebolt_topo.narrative.limits.Limits`), its
content hashed and compressed into the import's temporary pack as it is read, and the trees
built as directories complete (:mod:`~codebolt_topo.narrative.treebuilder`); the tree and the
commit must hash to the ids the manifest names, then :mod:`~codebolt_topo.narrative.importer`
runs the checks every import runs. Memory does not grow with the members' sizes or number.
When the receiver lacks the original parent, the snapshot is re-parented onto the local thread
tip.
"""

from __future__ import annotations

import binascii
import io
import json
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from dulwich.errors import ObjectFormatException
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.refs import Ref

from codebolt_topo.narrative.bounds import SnapshotBounds
from codebolt_topo.narrative.checkout import diff_trees
from codebolt_topo.narrative.errors import CorruptDataError, UnsafeInputError
from codebolt_topo.narrative.hierarchy import SnapshotInfo
from codebolt_topo.narrative.importer import ImportReport, import_objects
from codebolt_topo.narrative.incoming import Incoming, PackWriter
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import thread_ref
from codebolt_topo.narrative.presence import StorePresence
from codebolt_topo.narrative.safety import MODE_EXEC, MODE_FILE, MODE_LINK
from codebolt_topo.narrative.tarsafe import FORMAT, read_tar
from codebolt_topo.narrative.treebuilder import TreeBuilder

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["FORMAT", "export_tar", "import_tar"]

_COMMIT, _BLOB = 1, 3
_MODES = {"100644": MODE_FILE, "100755": MODE_EXEC, "120000": MODE_LINK}


def export_tar(store: NarrativeStore, info: SnapshotInfo, out: BinaryIO) -> None:
    """Write *info*'s snapshot as tar.gz to *out* (deterministic: fixed owners and mtimes).

    Refused before anything is written when the snapshot is past the limits or holds a
    symlink leading outside (:mod:`~codebolt_topo.narrative.bounds`); files are read one at a
    time.
    """
    odb = store.repo.object_store
    commit = odb[ObjectID(info.commit.encode())]
    assert isinstance(commit, Commit)
    bounds = SnapshotBounds(store)
    figures = bounds.check(bytes(commit.tree), f"snapshot {info.snapshot_id}")
    bounds.save()
    meta = info.meta
    manifest = {
        "format": FORMAT,
        "version": 2,
        "commit": info.commit,
        "tree": info.tree,
        "parents": list(info.parents),
        "author": commit.author.decode("utf-8", "surrogateescape"),
        "committer": commit.committer.decode("utf-8", "surrogateescape"),
        "author_time": commit.author_time,
        "commit_time": commit.commit_time,
        "author_timezone": commit.author_timezone,
        "commit_timezone": commit.commit_timezone,
        "message": commit.message.decode("utf-8"),
        "hierarchy": {
            "objective": {"id": meta.objective_id, "name": meta.objective_name},
            "thread": {"id": meta.thread_id, "name": meta.thread_name},
            "run": {"id": meta.run_id, "name": meta.run_name},
            "snapshot": {"id": meta.snapshot_id, "name": meta.snapshot_name},
            "environment": meta.environment,
            "time": meta.time,
        },
        "files": figures.files,
    }
    changes = diff_trees(lambda sha: odb[ObjectID(sha)], None, bytes(commit.tree))
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        data = json.dumps(manifest, indent=1).encode()
        tar.addfile(_member("manifest.json", len(data), commit.commit_time), io.BytesIO(data))
        for path, _old, leaf in changes:
            if leaf is None:
                continue
            mode, blob = leaf[0], odb[ObjectID(leaf[1])]
            assert isinstance(blob, Blob)
            name = "files/" + path.decode("utf-8", "surrogateescape")
            member = _member(name, len(blob.data), commit.commit_time)
            if mode == MODE_LINK:
                member.type, member.size = tarfile.SYMTYPE, 0
                member.linkname = blob.data.decode("utf-8", "surrogateescape")
                tar.addfile(member)
            else:
                member.mode = 0o755 if mode == MODE_EXEC else 0o644
                tar.addfile(member, io.BytesIO(blob.data))


def import_tar(
    store: NarrativeStore, source: bytes | BinaryIO, source_env: str | None
) -> ImportReport:
    """Verify a snapshot tarball completely, then import it (see the module docstring)."""
    limits = store.limits
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    odb = store.repo.object_store
    with Incoming(odb.pack_dir, limits) as incoming:
        writer = PackWriter(incoming)
        builder = TreeBuilder(writer)
        try:
            with StorePresence(odb.pack_dir) as present:
                manifest, files = _read_files(stream, limits, writer, builder, present)
            root = binascii.hexlify(builder.finish()).decode()
        finally:
            builder.close()
        if files != manifest.get("files", files):
            raise CorruptDataError("the manifest counts another number of files")
        if root != _field(manifest, "tree"):
            raise CorruptDataError("files do not hash to the tree the manifest names")
        commit = _commit(manifest, root)
        if commit.id.decode() != _field(manifest, "commit"):
            raise CorruptDataError("manifest does not hash to the commit it names")
        meta = parse_message(commit.message)
        if meta is None:
            raise CorruptDataError("the snapshot commit carries no narrative metadata")
        if not all(ObjectID(p) in odb for p in commit.parents):
            local = store.repo.refs.as_dict().get(Ref(thread_ref(meta.thread_id)))
            commit = _commit(manifest, root, parents=[local] if local else [])
        writer.add(_COMMIT, commit.as_raw_string())
        writer.finish()
        refs = {thread_ref(meta.thread_id): bytes(commit.id)}
        return import_objects(store, incoming, refs, (), source_env or meta.environment)


def _read_files(
    stream: BinaryIO,
    limits: Limits,
    writer: PackWriter,
    builder: TreeBuilder,
    present: StorePresence,
) -> tuple[dict[str, Any], int]:
    """Write each file member as a blob and add it to the trees; returns the manifest and
    the number of files. A blob the store already holds is taken back once hashed."""
    manifest: dict[str, Any] | None = None
    entries: Iterator[Any] | None = None
    files = 0
    for member, parts, content in read_tar(stream, limits):
        if member.isdir():
            continue
        if member.name == "manifest.json":
            if manifest is not None or files:
                raise UnsafeInputError("manifest.json must come first, once")
            check_limit("manifest size", member.size, limits.max_header_bytes)
            manifest = _load_manifest(b"".join(content()))
            if manifest["version"] == 1:
                listed = manifest.get("entries")
                if not isinstance(listed, list):
                    raise CorruptDataError("manifest entries do not match the archive members")
                entries = iter(listed)
            continue
        if manifest is None:
            raise UnsafeInputError("manifest.json must be the first member")
        path = member.name[len("files/") :]
        if member.issym():
            mode = MODE_LINK
            index, sha = writer.add(_BLOB, member.linkname.encode("utf-8", "surrogateescape"))
            if writer.written(sha):
                writer.take_back(index)
        else:
            mode = MODE_EXEC if member.mode & 0o100 else MODE_FILE
            try:
                index, sha = writer.add_stream(_BLOB, member.size, content())
            except ValueError as exc:
                raise CorruptDataError(f"member {member.name!r}: {exc}") from None
            if writer.written(sha) or sha in present:
                writer.take_back(index)
        if entries is not None:
            _match_entry(next(entries, None), path, mode, sha)
        builder.add(parts, mode, sha)
        files += 1
    if manifest is None:
        raise CorruptDataError("tarball has no manifest.json")
    if entries is not None and next(entries, None) is not None:
        raise CorruptDataError("manifest entries do not match the archive members")
    return manifest, files


def _match_entry(entry: object, path: str, mode: int, sha: bytes) -> None:
    """A version 1 manifest lists every file: it must name this one, with this content."""
    if not isinstance(entry, dict) or entry.get("path") != path:
        raise CorruptDataError(f"manifest entry {path!r} does not match the archive")
    if _MODES.get(str(entry.get("mode"))) != mode:
        raise CorruptDataError(f"{path!r}: symlink and file disagree between manifest and archive")
    if entry.get("blob") != binascii.hexlify(sha).decode():
        raise CorruptDataError(f"{path!r} does not hash to its blob id")


def _load_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise CorruptDataError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptDataError("manifest.json is not a narrative snapshot manifest")
    if manifest.get("version") not in (1, 2):
        raise CorruptDataError(f"unsupported manifest version {manifest.get('version')!r}")
    return manifest


def _commit(manifest: dict[str, Any], tree: str, parents: list[bytes] | None = None) -> Commit:
    try:
        commit = Commit()
        commit.tree = ObjectID(tree.encode())
        given = [ObjectID(str(p).encode()) for p in manifest["parents"]]
        commit.parents = given if parents is None else [ObjectID(p) for p in parents]
        commit.author = str(manifest["author"]).encode("utf-8", "surrogateescape")
        commit.committer = str(manifest["committer"]).encode("utf-8", "surrogateescape")
        commit.author_time = int(manifest["author_time"])
        commit.commit_time = int(manifest["commit_time"])
        commit.author_timezone = int(manifest["author_timezone"])
        commit.commit_timezone = int(manifest["commit_timezone"])
        commit.message = str(manifest["message"]).encode()
        commit.check()
    except (KeyError, TypeError, ValueError, ObjectFormatException) as exc:
        raise CorruptDataError(f"malformed manifest commit fields: {exc}") from exc
    return commit


def _field(manifest: dict[str, Any], key: str) -> str:
    value = manifest.get(key)
    if not isinstance(value, str):
        raise CorruptDataError(f"manifest lacks {key!r}")
    return value


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.mtime, member.mode = size, mtime, 0o644
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member
