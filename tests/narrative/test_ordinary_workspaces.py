"""Ordinary workspaces whose bundles once made import spin forever (issue 12, finding 1).

A tree or blob of 64 KiB or more that compresses well made the pack reader's zlib walk run on
into the next object and never stop: CPython keeps the input after a stream's end in
``unconsumed_tail`` as well as in ``unused_data``, and the walk waited for that tail to empty.
The tests of the time never met it: their workspaces were tiny or incompressible.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import OpenStore

pytestmark = pytest.mark.timeout(60)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _round_trip(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    info = a.snapshot("o", "t", "r")
    assert b.import_bundle(a.export_bundle(), "a").created
    b.restore(info.snapshot_id)
    assert _files(b.workspace) == _files(a.workspace)
    c = open_store("c")
    assert c.import_tar(a.export_tar(info.snapshot_id)).created
    c.restore(info.snapshot_id)
    assert _files(c.workspace) == _files(a.workspace)


def test_two_thousand_small_python_files(open_store: OpenStore) -> None:
    """The root tree of 2,000 entries is ~70 KB and compresses to a few KB."""
    ws = open_store("a").workspace
    rng = random.Random(12)
    for i in range(2000):
        (ws / f"mod_{i:04d}.py").write_text(f"x = {i % 97}\n" * rng.randint(1, 49))
    _round_trip(open_store)


def test_two_470_kb_text_files(open_store: OpenStore) -> None:
    ws = open_store("a").workspace
    for i in range(2):
        (ws / f"t{i}.txt").write_text(f"x = {i}\n" * (470_000 // 6))
    _round_trip(open_store)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_50000_file_snapshot_goes_through_a_tarball(open_store: OpenStore) -> None:
    """Finding 7: ``export --tar`` of 50,000 files wrote a 6.1 MB manifest that import
    refused (over 4 MiB). Version 2 manifests do not list the files."""
    import io
    import tarfile

    ws = open_store("a").workspace
    for d in range(500):
        (ws / f"d{d:03d}").mkdir()
        for f in range(100):
            (ws / f"d{d:03d}" / f"f{f:02d}.txt").write_text(f"{d} {f}\n")
    a = open_store("a")
    info = a.snapshot("o", "t", "r")
    data = a.export_tar(info.snapshot_id)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = tar.next()
        assert manifest is not None
        assert manifest.size < 4096
    [created] = open_store("b").import_tar(data).created
    assert created.new == info.commit  # the same commit: the same tree, byte for byte


def test_names_no_import_accepts_are_not_captured(open_store: OpenStore) -> None:
    """What we export we import: a name holding a backslash (legal here, a separator on
    Windows, refused at import) is left out of the snapshot like ``.git``."""
    a = open_store("a")
    (a.workspace / "kept.txt").write_text("kept\n")
    (a.workspace / "back\\slash.txt").write_text("left out\n")
    (a.workspace / "dir\\name").mkdir()
    (a.workspace / "dir\\name" / "inside.txt").write_text("left out\n")
    info = a.snapshot("o", "t", "r")
    b = open_store("b")
    assert b.import_bundle(a.export_bundle(), "a").created
    assert b.import_tar(a.export_tar(info.snapshot_id)).unchanged
    b.restore(info.snapshot_id)
    assert _files(b.workspace) == {"kept.txt": b"kept\n"}
