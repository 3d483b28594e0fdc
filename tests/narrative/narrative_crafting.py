"""Helpers for the Narrative Engine tests: small workspaces and hand-crafted archives."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree

from codebolt_topo.narrative.metadata import SnapshotMeta, format_message
from codebolt_topo.narrative.packs import object_header


def write_files(root: Path, files: dict[str, str]) -> None:
    """Create *files* (relative path -> text) under *root*."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read_files(root: Path) -> dict[str, str]:
    """Every regular file under *root* except ``.git``, as relative path -> text."""
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(root).parts
    }


def pack_bytes(objects: list[ShaFile]) -> bytes:
    """A pack of whole objects, for crafting bundles by hand."""
    body = b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big")
    for obj in objects:
        raw = obj.as_raw_string()
        body += object_header(obj.type_num, len(raw)) + zlib.compress(raw)
    return body + hashlib.sha1(body).digest()


def bundle_bytes(
    refs: dict[bytes, bytes], objects: list[ShaFile], prerequisites: tuple[bytes, ...] = ()
) -> bytes:
    """A v2 bundle with the given header lines and a pack of *objects*."""
    head = b"# v2 git bundle\n"
    head += b"".join(b"-" + p + b"\n" for p in prerequisites)
    head += b"".join(sha + b" " + ref + b"\n" for ref, sha in refs.items())
    return head + b"\n" + pack_bytes(objects)


def snapshot_commit(tree: Tree, thread: str = "t1", parents: tuple[bytes, ...] = ()) -> Commit:
    """A commit carrying valid narrative metadata, as a peer would send."""
    meta = SnapshotMeta(
        "o1", "o1", thread, thread, "r1", "r1", "s1", "s1", "peer", "2025-01-01T00:00:00Z"
    )
    commit = Commit()
    commit.tree = tree.id
    commit.parents = [ObjectID(p) for p in parents]
    commit.author = commit.committer = b"peer <peer@narrative.invalid>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = format_message(meta, "crafted")
    return commit


def tree_of(entries: dict[bytes, tuple[int, ShaFile]]) -> Tree:
    """A tree holding *entries* (name -> (mode, object))."""
    tree = Tree()
    for name, (mode, obj) in entries.items():
        tree.add(name, mode, obj.id)
    return tree


def blob(text: bytes) -> Blob:
    return Blob.from_string(text)
