"""One snapshot as a tar.gz: ``manifest.json`` first, then the files under ``files/``.

The manifest carries everything needed to rebuild the exact commit (tree, parents, author,
committer, times, full message with its hierarchy trailers) plus a readable copy of the
hierarchy and one entry per file (path, mode, blob id, size)::

    {"format": "codebolt-narrative-snapshot", "version": 1, "commit": "...", "tree": "...",
     "parents": [...], "author": "...", "committer": "...", "author_time": 0, "commit_time": 0,
     "author_timezone": 0, "commit_timezone": 0, "message": "...",
     "hierarchy": {"objective": {"id": "...", "name": "..."}, "thread": {...}, "run": {...},
                   "snapshot": {...}, "environment": "...", "time": "..."},
     "entries": [{"path": "src/a.py", "mode": "100644", "blob": "...", "size": 12}]}

Import never extracts: members are read into memory through a bounded gunzip, each checked
(no ``..``, absolute paths, ``.git``, links leading outside, hard links, devices, FIFOs or
setuid bits; sizes and counts within :class:`~codebolt_topo.narrative.limits.Limits`), every
blob, tree and the commit are rebuilt and must hash to the ids the manifest names. When the
receiver lacks the original parent, the snapshot is re-parented onto the local thread tip.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from typing import TYPE_CHECKING, Any

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref

from codebolt_topo.narrative.errors import CorruptDataError, LimitExceededError, UnsafeInputError
from codebolt_topo.narrative.hierarchy import SnapshotInfo
from codebolt_topo.narrative.importer import ImportReport, import_objects
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import thread_ref
from codebolt_topo.narrative.safety import (
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    check_relative_path,
    link_stays_inside,
)

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["FORMAT", "export_tar", "import_tar"]

FORMAT = "codebolt-narrative-snapshot"
_MODES = {"100644": MODE_FILE, "100755": MODE_EXEC, "120000": MODE_LINK}


def export_tar(store: NarrativeStore, info: SnapshotInfo) -> bytes:
    """Write *info*'s snapshot as tar.gz bytes (deterministic: fixed owners and mtimes)."""
    odb = store.repo.object_store
    commit = odb[ObjectID(info.commit.encode())]
    assert isinstance(commit, Commit)
    files = list(_walk(store, bytes(commit.tree), ""))
    meta = info.meta
    manifest = {
        "format": FORMAT,
        "version": 1,
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
        "entries": [
            {"path": path, "mode": f"{mode:o}", "blob": blob.id.decode(), "size": len(blob.data)}
            for path, mode, blob in files
        ],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(manifest, indent=1).encode()
        tar.addfile(_member("manifest.json", len(data), commit.commit_time), io.BytesIO(data))
        for path, mode, blob in files:
            member = _member("files/" + path, len(blob.data), commit.commit_time)
            if mode == MODE_LINK:
                member.type, member.size = tarfile.SYMTYPE, 0
                member.linkname = blob.data.decode("utf-8", "surrogateescape")
                tar.addfile(member)
            else:
                member.mode = 0o755 if mode == MODE_EXEC else 0o644
                tar.addfile(member, io.BytesIO(blob.data))
    return out.getvalue()


def import_tar(store: NarrativeStore, data: bytes, source_env: str | None) -> ImportReport:
    """Verify a snapshot tarball completely, then import it (see the module docstring)."""
    limits = store.limits
    check_limit("tarball size", len(data), limits.max_archive_bytes)
    manifest, members = _read_members(data, limits)
    entries = manifest.get("entries")
    if not isinstance(entries, list) or len(entries) != len(members):
        raise CorruptDataError("manifest entries do not match the archive members")
    blobs: dict[str, tuple[int, Blob]] = {}
    for entry in entries:
        path, mode, blob = _entry_blob(entry, members, limits)
        blobs[path] = (mode, blob)
    trees: list[ShaFile] = []
    root = _build_tree(blobs, trees)
    if root != _field(manifest, "tree"):
        raise CorruptDataError("files do not hash to the tree the manifest names")
    commit = _commit(manifest, root)
    if commit.id.decode() != _field(manifest, "commit"):
        raise CorruptDataError("manifest does not hash to the commit it names")
    meta = parse_message(commit.message)
    if meta is None:
        raise CorruptDataError("the snapshot commit carries no narrative metadata")
    odb = store.repo.object_store
    if not all(ObjectID(p) in odb for p in commit.parents):
        local = store.repo.refs.as_dict().get(Ref(thread_ref(meta.thread_id)))
        commit = _commit(manifest, root, parents=[local] if local else [])
    objects: list[ShaFile] = [*(b for _m, b in blobs.values()), *trees, commit]
    refs = {thread_ref(meta.thread_id): bytes(commit.id)}
    return import_objects(store, objects, refs, (), source_env or meta.environment)


class _BoundedGunzip(io.RawIOBase):
    """Inflate gzip lazily and refuse to produce more than *limit* bytes (bomb guard)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._pos, self._limit, self._out = memoryview(data), 0, limit, 0
        self._inflater = zlib.decompressobj(wbits=31)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        chunk = b""
        while not chunk and not self._inflater.eof:
            if self._inflater.unconsumed_tail:
                chunk = self._inflater.decompress(self._inflater.unconsumed_tail, want)
            elif self._pos < len(self._data):
                feed = self._data[self._pos : self._pos + 65536]
                self._pos += len(feed)
                chunk = self._inflater.decompress(feed, want)
            else:
                raise CorruptDataError("truncated gzip stream")
        self._out += len(chunk)
        if self._out > self._limit:
            raise LimitExceededError(f"tarball inflates beyond the limit ({self._limit} bytes)")
        buffer[: len(chunk)] = chunk
        return len(chunk)


_Members = dict[str, tarfile.TarInfo | bytes]
"""Path under ``files/`` → file content, or the TarInfo of a symlink."""


def _read_members(data: bytes, limits: Limits) -> tuple[dict[str, Any], _Members]:
    manifest: dict[str, Any] | None = None
    members: _Members = {}
    stream = io.BufferedReader(_BoundedGunzip(data, limits.max_unpacked_bytes))
    total = count = 0
    try:
        with tarfile.open(
            fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for member in tar:
                count += 1
                check_limit("tarball members", count, limits.max_entries)
                _check_member(member, limits)
                total += member.size
                check_limit("member size", member.size, limits.max_object_bytes)
                check_limit("unpacked size", total, limits.max_unpacked_bytes)
                if member.isdir():
                    continue
                if member.name == "manifest.json":
                    if manifest is not None or members:
                        raise UnsafeInputError("manifest.json must come first, once")
                    check_limit("manifest size", member.size, limits.max_header_bytes)
                    manifest = _load_manifest(_read(tar, member))
                    continue
                if manifest is None:
                    raise UnsafeInputError("manifest.json must be the first member")
                path = member.name[len("files/") :]
                if path in members:
                    raise UnsafeInputError(f"duplicate member {member.name!r}")
                members[path] = member if member.issym() else _read(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
        raise CorruptDataError(f"corrupt tarball: {exc}") from exc
    if manifest is None:
        raise CorruptDataError("tarball has no manifest.json")
    return manifest, members


def _check_member(member: tarfile.TarInfo, limits: Limits) -> None:
    name = member.name
    check_limit(
        "member name length", len(name.encode("utf-8", "surrogateescape")), limits.max_name_bytes
    )
    if name.startswith("/") or ".." in name.split("/"):
        raise UnsafeInputError(f"member {name!r} escapes the archive")
    if member.islnk():
        raise UnsafeInputError(f"hard link {name!r} -> {member.linkname!r} refused")
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeInputError(f"device or FIFO member {name!r} refused")
    if not (member.isreg() or member.issym() or member.isdir()):
        raise UnsafeInputError(f"unsupported member type for {name!r}")
    if member.mode & 0o7000:
        raise UnsafeInputError(f"member {name!r} has setuid/setgid/sticky bits")
    if name == "manifest.json" and member.isreg():
        return
    if not name.startswith("files/"):
        raise UnsafeInputError(f"unexpected member {name!r}")
    parts = check_relative_path(name[len("files/") :].rstrip("/"), limits)
    if member.issym():
        target = member.linkname.encode("utf-8", "surrogateescape")
        if not link_stays_inside(parts, target):
            raise UnsafeInputError(f"symlink {name!r} -> {member.linkname!r} leads outside")


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise CorruptDataError(f"member {member.name!r} has no data")
    data = handle.read()
    if len(data) != member.size:
        raise CorruptDataError(f"member {member.name!r} is truncated")
    return data


def _load_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise CorruptDataError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptDataError("manifest.json is not a narrative snapshot manifest")
    if manifest.get("version") != 1:
        raise CorruptDataError(f"unsupported manifest version {manifest.get('version')!r}")
    return manifest


def _entry_blob(entry: object, members: _Members, limits: Limits) -> tuple[str, int, Blob]:
    if not isinstance(entry, dict):
        raise CorruptDataError("malformed manifest entry")
    path, mode_text, blob_id = entry.get("path"), entry.get("mode"), entry.get("blob")
    if not isinstance(path, str) or path not in members or mode_text not in _MODES:
        raise CorruptDataError(f"manifest entry {path!r} does not match the archive")
    check_relative_path(path, limits)
    mode = _MODES[str(mode_text)]
    member = members[path]
    if (mode == MODE_LINK) != isinstance(member, tarfile.TarInfo):
        raise CorruptDataError(f"{path!r}: symlink and file disagree between manifest and archive")
    content = (
        member if isinstance(member, bytes) else member.linkname.encode("utf-8", "surrogateescape")
    )
    blob = Blob.from_string(content)
    if blob.id.decode() != blob_id:
        raise CorruptDataError(f"{path!r} does not hash to its blob id")
    return path, mode, blob


def _build_tree(blobs: dict[str, tuple[int, Blob]], out: list[ShaFile]) -> str:
    root: dict[str, Any] = {}
    for path, leaf in blobs.items():
        node = root
        *dirs, name = path.split("/")
        for part in dirs:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CorruptDataError(f"{path!r} lies under a file")
            node = child
        if name in node:
            raise CorruptDataError(f"{path!r} is both a file and a directory")
        node[name] = leaf
    return _tree_of(root, out).decode()


def _tree_of(node: dict[str, Any], out: list[ShaFile]) -> bytes:
    tree = Tree()
    for name, child in node.items():
        raw = name.encode("utf-8", "surrogateescape")
        if isinstance(child, dict):
            tree.add(raw, MODE_DIR, ObjectID(_tree_of(child, out)))
        else:
            tree.add(raw, child[0], child[1].id)
    out.append(tree)
    return bytes(tree.id)


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
    except (KeyError, TypeError, ValueError) as exc:
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


def _walk(store: NarrativeStore, tree_id: bytes, prefix: str) -> list[tuple[str, int, Blob]]:
    tree = store.repo.object_store[ObjectID(tree_id)]
    assert isinstance(tree, Tree)
    out: list[tuple[str, int, Blob]] = []
    for name, mode, sha in tree.iteritems():
        path = prefix + name.decode("utf-8", "surrogateescape")
        if mode == MODE_DIR:
            out.extend(_walk(store, sha, path + "/"))
        else:
            blob = store.repo.object_store[sha]
            assert isinstance(blob, Blob)
            out.append((path, mode, blob))
    return out
