"""Hostile and broken archives are refused with a NarrativeError, and nothing moves."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from conftest import OpenStore
from dulwich.objects import ShaFile
from hostile_inputs import ofs_distance, varint
from narrative_crafting import blob, bundle_bytes, snapshot_commit, tree_of, write_files

from codebolt_topo.narrative import (
    CorruptDataError,
    HierarchyError,
    InvalidNameError,
    LimitExceededError,
    Limits,
    MissingPrerequisiteError,
    NarrativeError,
    NarrativeStore,
    UnsafeInputError,
)
from codebolt_topo.narrative import importer as importer_module
from codebolt_topo.narrative.safety import MODE_DIR, MODE_FILE

REF = b"refs/narrative/threads/t1"


def _valid_bundle() -> tuple[bytes, bytes]:
    content = blob(b"hello")
    tree = tree_of({b"a.txt": (MODE_FILE, content)})
    commit = snapshot_commit(tree)
    return bundle_bytes({REF: commit.id}, [content, tree, commit]), commit.id


def _untouched(store: NarrativeStore) -> None:
    assert store.heads() == {}
    packs = Path(store.repo.object_store.pack_dir)
    assert list(packs.iterdir()) == []


def test_a_crafted_valid_bundle_imports(open_store: OpenStore) -> None:
    store = open_store("b")
    data, commit = _valid_bundle()
    store.import_bundle(data, "peer")
    assert store.heads() == {REF.decode(): commit.decode()}


@pytest.mark.parametrize("name", [b".git", b".GIT", b".Git.", b"git~1", b".git "])
def test_trees_with_dot_git_entries_are_refused(open_store: OpenStore, name: bytes) -> None:
    store = open_store("b")
    hook = blob(b"#!/bin/sh\nrm -rf /\n")
    inner = tree_of({b"post-checkout": (MODE_FILE, hook)})
    tree = tree_of({name: (MODE_DIR, inner)})
    commit = snapshot_commit(tree)
    with pytest.raises(UnsafeInputError, match=r"\.git"):
        store.import_bundle(bundle_bytes({REF: commit.id}, [hook, inner, tree, commit]), "peer")
    _untouched(store)


@pytest.mark.parametrize(
    "ref",
    [
        b"refs/narrative/threads/../../heads/x",
        b"refs/narrative/threads/a..b",
        b"refs/narrative/threads/x.lock",
        b"refs/narrative/threads/bad name",
        b"refs/narrative/threads/a~1",
        b"refs/heads/main",
        b"refs/narrative/remotes/e/threads/t1",
    ],
)
def test_malformed_or_foreign_refs_are_refused(open_store: OpenStore, ref: bytes) -> None:
    store = open_store("b")
    content = blob(b"x")
    tree = tree_of({b"a": (MODE_FILE, content)})
    commit = snapshot_commit(tree)
    with pytest.raises(InvalidNameError):
        store.import_bundle(bundle_bytes({ref: commit.id}, [content, tree, commit]), "peer")
    _untouched(store)


def test_truncated_and_corrupt_bundles_are_refused(open_store: OpenStore) -> None:
    store = open_store("b")
    data, _ = _valid_bundle()
    for broken in (data[:-1], data[:-30], data[: data.index(b"PACK") + 20], data[:40]):
        with pytest.raises(CorruptDataError):
            store.import_bundle(broken, "peer")
    flipped = bytearray(data)
    flipped[data.index(b"PACK") + 20] ^= 0xFF
    with pytest.raises(CorruptDataError):
        store.import_bundle(bytes(flipped), "peer")
    with pytest.raises(CorruptDataError):
        store.import_bundle(b"# v9 git bundle\n", "peer")
    _untouched(store)


def test_a_pack_whose_checksum_is_fixed_up_still_fails_object_checks(open_store: OpenStore) -> None:
    store = open_store("b")
    tree = tree_of({b"a": (MODE_FILE, blob(b"absent from the pack"))})
    commit = snapshot_commit(tree)
    with pytest.raises(CorruptDataError, match="missing"):
        store.import_bundle(bundle_bytes({REF: commit.id}, [tree, commit]), "peer")
    _untouched(store)


def test_commits_without_metadata_or_on_the_wrong_thread_are_refused(open_store: OpenStore) -> None:
    store = open_store("b")
    content = blob(b"x")
    tree = tree_of({b"a": (MODE_FILE, content)})
    other = snapshot_commit(tree, thread="someone-else")
    with pytest.raises(HierarchyError):
        store.import_bundle(bundle_bytes({REF: other.id}, [content, tree, other]), "peer")
    plain = snapshot_commit(tree)
    plain.message = b"no trailers here\n"
    with pytest.raises(HierarchyError):
        store.import_bundle(bundle_bytes({REF: plain.id}, [content, tree, plain]), "peer")
    _untouched(store)


def test_decompression_bombs_and_huge_packs_are_refused(
    open_store: OpenStore, tmp_path: Path
) -> None:
    store = open_store("b")
    store.limits = Limits(max_object_bytes=1 << 20, max_unpacked_bytes=4 << 20, max_entries=10)
    bomb = blob(b"\0" * (8 << 20))
    tree = tree_of({b"a": (MODE_FILE, bomb)})
    commit = snapshot_commit(tree)
    with pytest.raises(LimitExceededError):
        store.import_bundle(bundle_bytes({REF: commit.id}, [bomb, tree, commit]), "peer")
    many = [blob(str(i).encode()) for i in range(11)]
    with pytest.raises(LimitExceededError, match="objects in pack"):
        store.import_bundle(bundle_bytes({REF: commit.id}, many), "peer")
    _untouched(store)


def test_a_lying_size_header_is_refused(open_store: OpenStore) -> None:
    store = open_store("b")
    raw = zlib.compress(b"\0" * 100_000)
    body = b"PACK\0\0\0\2\0\0\0\1" + bytes([0x3A]) + raw  # blob, declared size 10
    import hashlib

    pack = body + hashlib.sha1(body).digest()
    data = b"# v2 git bundle\n" + b"0" * 40 + b" " + REF + b"\n\n" + pack
    with pytest.raises(CorruptDataError, match="declared size"):
        store.import_bundle(data, "peer")


def test_too_many_refs_and_huge_names(open_store: OpenStore) -> None:
    store = open_store("b")
    store.limits = Limits(max_refs=3, max_name_bytes=64)
    refs = {b"refs/narrative/threads/t%d" % i: b"0" * 40 for i in range(5)}
    with pytest.raises(LimitExceededError):
        store.import_bundle(bundle_bytes(refs, []), "peer")
    long_ref = b"refs/narrative/threads/" + b"a" * 100
    with pytest.raises(LimitExceededError):
        store.import_bundle(bundle_bytes({long_ref: b"0" * 40}, []), "peer")


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = True) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def _good_tar(open_store: OpenStore) -> bytes:
    a = open_store("a")
    write_files(a.workspace, {"x.txt": "x"})
    return a.export_tar(a.snapshot("o", "t", "r").commit)


def _members_of(data: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            handle = tar.extractfile(info)
            out.append((info, handle.read() if handle else None))
    return out


@pytest.mark.parametrize(
    "evil",
    [
        _member("files/../../escape", b"x"),
        _member("/etc/passwd", b"x"),
        _member("files/.git/hooks/post-checkout", b"x"),
        _member("files/sub/.GIT/config", b"x"),
        _member("files/up", type=tarfile.SYMTYPE, linkname="../../etc/passwd"),
        _member("files/abs", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        _member("files/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        _member("files/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        _member("files/blk", type=tarfile.BLKTYPE),
        _member("files/fifo", type=tarfile.FIFOTYPE),
        _member("files/suid", b"x", mode=0o4755),
        _member("files/" + "n" * 5000, b"x"),
        _member("other.txt", b"x"),
    ],
    ids=lambda m: m[0].name[:30] + "|" + str(m[0].type),
)
def test_hostile_tar_members_are_refused(
    open_store: OpenStore, evil: tuple[tarfile.TarInfo, bytes]
) -> None:
    members = _members_of(_good_tar(open_store))
    store = open_store("b")
    with pytest.raises(UnsafeInputError):
        store.import_tar(_tar([*members, evil]))
    _untouched(store)


def test_tar_bombs_and_member_floods_are_refused(open_store: OpenStore) -> None:
    members = _members_of(_good_tar(open_store))
    store = open_store("b")
    store.limits = Limits(max_unpacked_bytes=1 << 20, max_entries=50)
    with pytest.raises(LimitExceededError):
        store.import_tar(_tar([*members, _member("files/big", b"\0" * (4 << 20))]))
    flood = [_member(f"files/z{i:03d}", b"") for i in range(60)]  # after x.txt: export order
    with pytest.raises(LimitExceededError):
        store.import_tar(_tar([*members, *flood]))
    _untouched(store)


def test_tampered_and_truncated_tars_are_refused(open_store: OpenStore) -> None:
    good = _good_tar(open_store)
    store = open_store("b")
    members = _members_of(good)
    manifest, (info, _data) = members[0], members[1]
    tampered = _tar([manifest, _member(info.name, b"not what the manifest says")])
    with pytest.raises(CorruptDataError, match="hash"):
        store.import_tar(tampered)
    with pytest.raises(CorruptDataError):
        store.import_tar(good[: len(good) // 2])
    with pytest.raises(CorruptDataError):
        store.import_tar(b"not a tarball at all")
    _untouched(store)


def test_a_crash_before_refs_move_changes_nothing(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "1"})
    a.snapshot("o", "t", "r")
    b.import_bundle(a.export_bundle(), "a")
    before = b.heads()
    write_files(a.workspace, {"x": "2"})
    a.snapshot("o", "t", "r")
    data = a.export_bundle()

    def crash(*_args: object) -> None:
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(importer_module, "_move_refs", crash)
    with pytest.raises(RuntimeError):
        b.import_bundle(data, "a")
    assert b.heads() == before
    monkeypatch.undo()
    assert b.import_bundle(data, "a").updated
    assert b.heads() == a.heads()


def test_a_killed_importer_leaves_refs_unchanged(open_store: OpenStore, tmp_path: Path) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "1"})
    a.snapshot("o", "t", "r")
    (tmp_path / "bundle").write_bytes(a.export_bundle())
    script = f"""
import os, signal
from codebolt_topo.narrative import importer
from codebolt_topo.narrative.store import NarrativeStore
importer._move_refs = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
store = NarrativeStore.open({str(b.state_dir)!r}, {str(b.workspace)!r}, "b")
store.import_bundle(open({str(tmp_path / "bundle")!r}, "rb").read(), "a")
"""
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ}, check=False)
    assert done.returncode == -9
    assert b.heads() == {}
    assert b.import_bundle((tmp_path / "bundle").read_bytes(), "a").created


def test_errors_are_narrative_errors() -> None:
    for cls in (CorruptDataError, UnsafeInputError, LimitExceededError, InvalidNameError):
        assert issubclass(cls, NarrativeError)


def _delta_record(kind: int, base: bytes, source: bytes, target: bytes) -> bytes:
    """A delta (insert everything) of *target* against *source*, referencing *base*."""
    from codebolt_topo.narrative.packs import object_header

    body = varint(len(source)) + varint(len(target)) + bytes([len(target)]) + target
    return object_header(kind, len(body)) + base + zlib.compress(body)


def _delta_bundle(kind: int, base_of: object) -> tuple[bytes, bytes]:
    """A bundle whose file blob is a delta; *base_of(offset of the source blob)* → base field."""
    import hashlib

    from codebolt_topo.narrative.packs import object_header

    source, target = blob(b"source text"), blob(b"target text")
    tree = tree_of({b"a": (MODE_FILE, target)})
    commit = snapshot_commit(tree)
    body = b"PACK\0\0\0\2\0\0\0\4"
    records = []
    for obj in (source, tree, commit):
        raw = obj.as_raw_string()
        records.append(object_header(obj.type_num, len(raw)) + zlib.compress(raw))
    at = len(body)
    body += records[0]
    delta_at = len(body)
    body += _delta_record(kind, base_of(at, delta_at, source), source.data, target.data)
    body += records[1] + records[2]
    pack = body + hashlib.sha1(body).digest()
    return b"# v2 git bundle\n" + commit.id + b" " + REF + b"\n\n" + pack, pack


def test_delta_packs_import_as_sent_and_bad_bases_are_refused(open_store: OpenStore) -> None:
    store = open_store("b")
    data, pack = _delta_bundle(7, lambda _at, _here, source: bytes.fromhex(source.id.decode()))
    assert store.import_bundle(data, "peer").created
    [stored] = Path(store.repo.object_store.pack_dir).glob("*.pack")
    assert stored.read_bytes() == pack
    for kind, base_of, error in (
        (6, lambda at, here, _s: ofs_distance(here - at), None),  # valid: imports elsewhere
        (6, lambda at, here, _s: ofs_distance(here - at - 3), CorruptDataError),  # inside an object
        (7, lambda *_a: b"\x42" * 20, MissingPrerequisiteError),  # base nowhere
    ):
        other = open_store(f"e{kind}{error is None}")
        bad, _ = _delta_bundle(kind, base_of)
        if error is None:
            assert other.import_bundle(bad, "peer").created
            continue
        with pytest.raises(error):
            other.import_bundle(bad, "peer")
        _untouched(other)


def _bomb(width: int = 20, levels: int = 3) -> tuple[list[ShaFile], ShaFile]:
    """A tree naming width ** (levels + 1) files from levels + 2 objects (a git bomb)."""
    content = blob(b"x")
    level = tree_of({b"f%d" % i: (MODE_FILE, content) for i in range(width)})
    objects: list[ShaFile] = [content, level]
    for _ in range(levels):
        level = tree_of({b"d%d" % i: (MODE_DIR, level) for i in range(width)})
        objects.append(level)
    return objects, level


def test_tree_bombs_and_deep_nesting_are_refused_at_import(open_store: OpenStore) -> None:
    """Shared subtrees can name exponentially many files from a few objects (a git bomb):
    each distinct tree is measured once, and the bundle is refused before anything is stored."""
    store = open_store("b")
    store.limits = Limits(max_entries=1000, max_path_depth=8)
    objects, root = _bomb()  # 20 ** 4 = 160,000 files from five objects
    bomb = snapshot_commit(root)
    with pytest.raises(LimitExceededError, match="files in one snapshot"):
        store.import_bundle(bundle_bytes({REF: bomb.id}, [*objects, bomb]), "peer")
    content = blob(b"x")
    deep = tree_of({b"f": (MODE_FILE, content)})
    chain: list[ShaFile] = [content, deep]
    for _ in range(2000):  # deeper than Python's recursion limit, too
        deep = tree_of({b"d": (MODE_DIR, deep)})
        chain.append(deep)
    nested = snapshot_commit(deep, thread="deep")
    deep_ref = b"refs/narrative/threads/deep"
    store.limits = Limits(max_entries=5000, max_path_depth=8)
    with pytest.raises(LimitExceededError, match="path depth"):
        store.import_bundle(bundle_bytes({deep_ref: nested.id}, [*chain, nested]), "peer")
    _untouched(store)


def test_a_stored_tree_bomb_is_refused_by_restore_and_export_without_expanding(
    open_store: OpenStore,
) -> None:
    """A bomb stored before import measured snapshots (10 ** 10 files here) is refused by
    restore and tarball export after measuring each distinct tree once: in milliseconds, with
    nothing written, where expanding it took 26 s and 345 MB before refusing."""
    from codebolt_topo.narrative.packs import write_pack

    store = open_store("b")
    objects, root = _bomb(width=10, levels=9)
    bomb = snapshot_commit(root)
    write_pack(store.repo.object_store.pack_dir, [*objects, bomb])
    store.repo.refs[REF] = bomb.id
    for attempt in (
        lambda: store.restore(bomb.id.decode()),
        lambda: store.export_tar(bomb.id.decode()),
    ):
        with pytest.raises(LimitExceededError, match=r"files in one snapshot.*10000000000 >"):
            attempt()
    assert list(store.workspace.iterdir()) == []


def test_symlinks_leading_outside_are_refused_at_import(open_store: OpenStore) -> None:
    """One rule for both formats: a link must be relative and stay inside the workspace."""
    from codebolt_topo.narrative.safety import MODE_LINK

    store = open_store("b")
    for name, target in ((b"etc", b"/etc"), (b"esc", b"../../outside"), (b"up", b"..")):
        link = blob(target)
        inner = tree_of({name: (MODE_LINK, link)})
        objects: list[ShaFile] = [link, inner]
        tree = inner
        if target == b"../../outside":  # one level down: still one level too high
            tree = tree_of({b"sub": (MODE_DIR, inner)})
            objects.append(tree)
        commit = snapshot_commit(tree)
        with pytest.raises(UnsafeInputError, match="leads outside the workspace"):
            store.import_bundle(bundle_bytes({REF: commit.id}, [*objects, commit]), "p")
    _untouched(store)


def test_restore_never_writes_through_a_link_in_the_workspace(
    open_store: OpenStore, tmp_path: Path
) -> None:
    """A link the user's ignore rules hide may stand where a snapshot has a directory:
    restore refuses to clobber it, and with force replaces it, never writing through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    store = open_store("b")
    evil = blob(b"written through the link?")
    inner = tree_of({b"evil.txt": (MODE_FILE, evil)})
    under = tree_of({b"d": (MODE_DIR, inner)})
    commit = snapshot_commit(under)
    store.import_bundle(bundle_bytes({REF: commit.id}, [evil, inner, under, commit]), "peer")
    write_files(store.workspace, {".gitignore": "d\n"})
    (store.workspace / "d").symlink_to(outside)  # ignored by the user's rules, never captured
    with pytest.raises(NarrativeError):
        store.restore(commit.id.decode())
    store.restore(commit.id.decode(), force=True)
    assert list(outside.iterdir()) == []
    assert (store.workspace / "d" / "evil.txt").read_bytes() == b"written through the link?"


def test_huge_tree_entry_names_are_refused(open_store: OpenStore) -> None:
    store = open_store("b")
    store.limits = Limits(max_name_bytes=64)
    content = blob(b"x")
    refusals: list[tuple[bytes, type[NarrativeError]]] = [
        (b"n" * 65, LimitExceededError),
        (b"ok/" + b"n" * 10, UnsafeInputError),
    ]
    for name, error in refusals:
        tree = tree_of({name: (MODE_FILE, content)})
        commit = snapshot_commit(tree)
        with pytest.raises(error):
            store.import_bundle(bundle_bytes({REF: commit.id}, [content, tree, commit]), "peer")
    _untouched(store)
    tree = tree_of({b"n" * 64: (MODE_FILE, content)})
    commit = snapshot_commit(tree)
    assert store.import_bundle(bundle_bytes({REF: commit.id}, [content, tree, commit]), "p").created
