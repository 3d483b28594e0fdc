"""One rule for symlinks leading out of the workspace, in both formats (issue 12, finding 6).

A bundle carrying ``etc -> /etc`` or ``esc -> ../../outside`` was accepted and restore created
the links, while the tarball path refused the same thing. Now a link's target must be relative
and its leading ``..`` may not climb above the workspace root (``..`` after a name is refused:
that name may be a link itself). Imports refuse a link that breaks the rule before storing
anything, restore refuses to create one, and snapshots do not capture one, so what we export
we import.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from conftest import OpenStore
from corpus import assert_same
from narrative_crafting import blob, bundle_bytes, snapshot_commit, tree_of

from codebolt_topo.narrative import NarrativeError, UnsafeInputError
from codebolt_topo.narrative.packs import write_pack
from codebolt_topo.narrative.safety import MODE_DIR, MODE_FILE, MODE_LINK, link_climb

REF = b"refs/narrative/threads/t1"
OUTSIDE = [
    ("etc", "/etc"),
    ("esc", "../../outside"),
    ("sub/esc", "../../outside"),
    ("sub/up", "x/../.."),
    ("dot", "./../x"),
    ("empty-up", ".."),
]
INSIDE = [("sub/ok", "../file.txt"), ("rel", "sub/ok"), ("here", "."), ("deep/er/l", "../../sub")]


def test_link_climb() -> None:
    assert link_climb(b"a/b") == 0
    assert link_climb(b"../a") == 1
    assert link_climb(b"../../a/./b/") == 2
    assert link_climb(b"./../x") == 1
    for bad in (b"/etc", b"", b"a/../b", b"x/../..", b"a\0b"):
        assert link_climb(bad) is None


def _link_bundle(path: str, target: str) -> bytes:
    link = blob(target.encode())
    *dirs, name = path.encode().split(b"/")
    tree = tree_of({name: (MODE_LINK, link)})
    objects = [link, tree]
    for d in reversed(dirs):
        tree = tree_of({d: (MODE_DIR, tree)})
        objects.append(tree)
    commit = snapshot_commit(tree)
    return bundle_bytes({REF: commit.id}, [*objects, commit])


def _link_tar(path: str, target: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        manifest = b'{"format": "codebolt-narrative-snapshot", "version": 2}'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        link = tarfile.TarInfo("files/" + path)
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
    return out.getvalue()


@pytest.mark.parametrize(("path", "target"), OUTSIDE)
def test_both_formats_refuse_the_same_links_before_storing(
    open_store: OpenStore, path: str, target: str
) -> None:
    store = open_store("b")
    for data, importer in ((_link_bundle(path, target), store.import_bundle),
                           (_link_tar(path, target), store.import_tar)):  # fmt: skip
        with pytest.raises(UnsafeInputError, match=f"symlink '{path}' -> .* leads outside"):
            importer(data, "peer")  # type: ignore[operator]
    assert store.heads() == {}
    assert list(Path(store.repo.object_store.pack_dir).iterdir()) == []


@pytest.mark.parametrize(("path", "target"), INSIDE)
def test_links_inside_are_accepted(open_store: OpenStore, path: str, target: str) -> None:
    assert open_store("b").import_bundle(_link_bundle(path, target), "peer").created


def test_snapshots_leave_out_links_leading_outside(open_store: OpenStore, tmp_path: Path) -> None:
    """What we export we import: a workspace's escaping links are not captured."""
    a = open_store("a")
    (a.workspace / "file.txt").write_text("kept\n")
    for path, target in OUTSIDE + INSIDE:
        (a.workspace / path).parent.mkdir(parents=True, exist_ok=True)
        (a.workspace / path).symlink_to(target)
    info = a.snapshot("o", "t", "r")
    expected = tmp_path / "expected"
    expected.mkdir()
    (expected / "file.txt").write_text("kept\n")
    for path, target in INSIDE:
        (expected / path).parent.mkdir(parents=True, exist_ok=True)
        (expected / path).symlink_to(target)
    for importer in ("bundle", "tar"):
        b = open_store(f"b-{importer}")
        if importer == "bundle":
            b.import_bundle(a.export_bundle(), "a")
        else:
            b.import_tar(a.export_tar(info.snapshot_id))
        b.restore(info.snapshot_id)
        assert_same(b.workspace, expected)
    assert not a.dirty_paths()


def test_restore_refuses_a_stored_link_leading_outside(open_store: OpenStore) -> None:
    """A snapshot stored before the rule (a local one, or imported by an older version)."""
    store = open_store("b")
    content, link = blob(b"data"), blob(b"/etc")
    tree = tree_of({b"a.txt": (MODE_FILE, content), b"etc": (MODE_LINK, link)})
    commit = snapshot_commit(tree)
    write_pack(store.repo.object_store.pack_dir, [content, link, tree, commit])
    store.repo.refs[REF] = commit.id
    with pytest.raises(NarrativeError, match="symlink 'etc' -> '/etc' leads outside"):
        store.restore(commit.id.decode())
    with pytest.raises(NarrativeError, match="leads outside"):
        store.export_tar(commit.id.decode())
    assert list(store.workspace.iterdir()) == []
