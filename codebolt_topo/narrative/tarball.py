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
from typing import TYPE_CHECKING, Any

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref

from codebolt_topo.narrative.checkout import bounded_changes
from codebolt_topo.narrative.errors import CorruptDataError
from codebolt_topo.narrative.hierarchy import SnapshotInfo
from codebolt_topo.narrative.importer import ImportReport, Incoming, import_objects
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.names import thread_ref
from codebolt_topo.narrative.safety import (
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    check_relative_path,
)
from codebolt_topo.narrative.tarsafe import FORMAT, Members, read_members

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["FORMAT", "export_tar", "import_tar"]

_MODES = {"100644": MODE_FILE, "100755": MODE_EXEC, "120000": MODE_LINK}


def export_tar(store: NarrativeStore, info: SnapshotInfo) -> bytes:
    """Write *info*'s snapshot as tar.gz bytes (deterministic: fixed owners and mtimes)."""
    odb = store.repo.object_store
    commit = odb[ObjectID(info.commit.encode())]
    assert isinstance(commit, Commit)
    changes = bounded_changes(
        lambda sha: odb[ObjectID(sha)], None, bytes(commit.tree), store.limits
    )
    files = [_file(store, path, leaf) for path, _old, leaf in changes if leaf is not None]
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
    manifest, members = read_members(data, limits)
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
    incoming = Incoming.of_objects(objects, odb.pack_dir)
    return import_objects(store, incoming, refs, (), source_env or meta.environment)


def _entry_blob(entry: object, members: Members, limits: Limits) -> tuple[str, int, Blob]:
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


def _file(store: NarrativeStore, path: bytes, leaf: tuple[int, bytes]) -> tuple[str, int, Blob]:
    blob = store.repo.object_store[ObjectID(leaf[1])]
    assert isinstance(blob, Blob)
    return path.decode("utf-8", "surrogateescape"), leaf[0], blob
