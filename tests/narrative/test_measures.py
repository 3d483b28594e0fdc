"""Snapshot figures (files, depth, symlink reach) are kept per tree, so an incremental import
measures only its new trees (issue 12, finding 8: measuring every incoming snapshot had read
every unchanged subtree from the store, 7 -> 66 ms for an incremental import at 50,000 files).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import OpenStore
from narrative_crafting import write_files

from codebolt_topo.narrative import NarrativeStore
from codebolt_topo.narrative.bounds import SnapshotBounds
from codebolt_topo.narrative.measure import Measure


@pytest.fixture
def store_reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every object read from a store's packs through dulwich, by id."""
    from dulwich.object_store import DiskObjectStore

    reads: list[bytes] = []
    original = DiskObjectStore.__getitem__

    def counting(self: DiskObjectStore, sha: Any) -> Any:
        reads.append(bytes(sha))
        return original(self, sha)

    monkeypatch.setattr(DiskObjectStore, "__getitem__", counting)
    return reads


def test_an_incremental_import_reads_no_unchanged_subtree(
    open_store: OpenStore, store_reads: list[bytes]
) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(
        a.workspace, {f"d{d:02d}/f{f:03d}.txt": f"{d}/{f}" for d in range(40) for f in range(50)}
    )
    a.snapshot("o", "t", "r")
    b.import_bundle(a.export_bundle(), "a")
    write_files(a.workspace, {"d07/f001.txt": "changed"})
    a.snapshot("o", "t", "r")
    incremental = a.export_bundle(have=b.have())
    reopened = NarrativeStore.open(b.state_dir, b.workspace, "b")  # figures persist on disk
    try:
        store_reads.clear()
        assert reopened.import_bundle(incremental, "a").updated
        odb, read = reopened.repo.object_store, list(store_reads)
        trees = [sha for sha in read if odb[sha].type_name == b"tree"]
        assert trees == []  # the 39 unchanged directories were not read to measure them
    finally:
        reopened.close()


def test_figures_count_shared_subtrees_every_time_they_appear(open_store: OpenStore) -> None:
    a = open_store("a")
    write_files(a.workspace, {f"x{i}/same/f{j}": "same" for i in range(3) for j in range(4)})
    (a.workspace / "x0" / "link").symlink_to("../x1/same")
    info = a.snapshot("o", "t", "r")
    bounds = SnapshotBounds(a)
    assert bounds.check(info.tree.encode(), "s") == Measure(files=13, depth=3, climb=0)
    bounds.save()
    assert a.measures.get(bytes.fromhex(info.tree)) == Measure(files=13, depth=3, climb=0)
