"""Real corpora through every format: snapshot -> bundle, tar.gz and a git CLI pack -> import
-> restore, byte for byte (issue 12: the tests of the time used tiny or incompressible
workspaces, and an ordinary one hung the pack reader).

Corpora: the project's own source tree; installed packages of this environment (thousands of
real text and binary files); files of every size around the readers' internal boundaries,
compressible and not; and a 100 MiB file. Each goes a second time with some files changed,
so the git CLI writes deltas against the first snapshot, large ones too.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import OpenStore
from corpus import SOURCE_TREE, assert_same, copy_tree, git_bundle_of, site_packages_subset

from codebolt_topo.narrative.deltas import IN_MEMORY
from codebolt_topo.narrative.incoming import KEEP_BLOBS
from codebolt_topo.narrative.inflate import FEED
from codebolt_topo.narrative.store import NarrativeStore
from codebolt_topo.narrative.trees import IN_ONE_READ
from codebolt_topo.narrative.window import SPAN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KIB, MIB = 1024, 1024 * 1024
SIZES = sorted(
    {0, 1, KEEP_BLOBS - 1, KEEP_BLOBS, KEEP_BLOBS + 1, FEED - 65, FEED - 64, FEED - 1, FEED,
     FEED + 1, FEED + 64, FEED + 65, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 2 * FEED, MIB,
     IN_ONE_READ + 1, IN_MEMORY - 1, IN_MEMORY + 1, SPAN - 1, SPAN, SPAN + 1}
)  # fmt: skip


def _through_every_format(open_store: OpenStore, tmp_path: Path, change: object) -> None:
    """Snapshot a's workspace, change it with *change(workspace)*, snapshot again; both
    snapshots must come back byte for byte through a bundle, a tarball and a git CLI pack."""
    a = open_store("a")
    first = a.snapshot("o", "t", "r", name="first")
    before = tmp_path / "before"
    copy_tree(a.workspace, before)
    change(a.workspace)  # type: ignore[operator]
    second = a.snapshot("o", "t", "r", name="second")
    bundle = a.export_bundle()
    receivers: list[NarrativeStore] = []
    b = open_store("b")
    b.import_bundle(bundle, "a")
    receivers.append(b)
    d = open_store("d")
    d.import_bundle(git_bundle_of(bundle, tmp_path), "a")
    receivers.append(d)
    for store in receivers:
        assert store.heads() == a.heads()
        store.restore(first.snapshot_id, force=True)
        assert_same(store.workspace, before)
        store.restore(second.snapshot_id)
        assert_same(store.workspace, a.workspace)
    c = open_store("c")
    c.import_tar(a.export_tar(first.snapshot_id))
    c.restore(first.snapshot_id)
    assert_same(c.workspace, before)
    c.import_tar(a.export_tar(second.snapshot_id))
    c.restore(second.snapshot_id)
    assert_same(c.workspace, a.workspace)


def _edit_some(root: Path, every: int = 7) -> None:
    """Change every *every*-th file a little (so git deltas it), add one, remove one."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    for path in files[::every]:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + b"edited" + data[len(data) // 2 :])
    if files:
        files[-1].unlink()
    (root / "added.txt").write_text("a file of the second snapshot\n")


def test_the_project_source_tree(open_store: OpenStore, tmp_path: Path) -> None:
    ws = open_store("a").workspace
    copy_tree(SOURCE_TREE, ws / "codebolt_topo")
    (ws / "run.sh").write_text("#!/bin/sh\necho run\n")
    (ws / "run.sh").chmod(0o755)
    (ws / "codebolt_topo" / "entry").symlink_to("narrative/entry.py")
    _through_every_format(open_store, tmp_path, _edit_some)


def test_an_installed_site_packages_tree(open_store: OpenStore, tmp_path: Path) -> None:
    site_packages_subset(open_store("a").workspace)
    files = [p for p in open_store("a").workspace.rglob("*") if p.is_file()]
    assert len(files) > 2000
    assert any(p.suffix == ".so" for p in files)
    _through_every_format(open_store, tmp_path, _edit_some)


def test_files_of_every_boundary_size(open_store: OpenStore, tmp_path: Path) -> None:
    """Sizes around 64 KiB, the inflate feed, the kept-blob size, the window span and the
    in-memory delta size, each compressible and not."""
    ws = open_store("a").workspace
    rng = random.Random(12)
    for size in SIZES:
        (ws / f"random-{size:08d}.bin").write_bytes(rng.randbytes(size))
        line = b"x = %d  # a line of an ordinary file\n" % size
        (ws / f"text-{size:08d}.txt").write_bytes((line * (size // len(line) + 1))[:size])

    def change(root: Path) -> None:
        for path in sorted(root.iterdir())[::3]:
            data = bytearray(path.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 4] = b"EDIT"
            path.write_bytes(bytes(data))

    _through_every_format(open_store, tmp_path, change)


def test_a_100_mib_file(open_store: OpenStore, tmp_path: Path) -> None:
    ws = open_store("a").workspace
    (ws / "big.bin").write_bytes(random.Random(100).randbytes(100 * MIB))
    (ws / "small.txt").write_text("beside it\n")

    def change(root: Path) -> None:
        with open(root / "big.bin", "r+b") as handle:
            handle.seek(50 * MIB)
            handle.write(b"a change in the middle of the big file")

    _through_every_format(open_store, tmp_path, change)
