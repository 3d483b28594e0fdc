"""Snapshots, the hierarchy, ignore rules, the stat cache and restore."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import OpenStore
from narrative_crafting import read_files, write_files

from codebolt_topo.errors import TopoError
from codebolt_topo.narrative import (
    DirtyWorkspaceError,
    HierarchyError,
    InvalidNameError,
    NarrativeError,
    NarrativeStore,
    UnknownSnapshotError,
)
from codebolt_topo.narrative.metadata import parse_message
from codebolt_topo.narrative.scan import scan_workspace
from codebolt_topo.narrative.statcache import StatCache


def test_narrative_error_is_a_topo_error() -> None:
    assert issubclass(NarrativeError, TopoError)


def test_snapshot_builds_the_hierarchy(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {"a.txt": "one", "src/b.py": "print(1)"})
    first = store.snapshot("obj-1", "t-1", "run-1", name="start", objective_name="Fix build")
    write_files(store.workspace, {"a.txt": "two"})
    second = store.snapshot("obj-1", "t-1", "run-2", message="second run\n\nbody")
    store.snapshot("obj-1", "t-2", "run-9")
    [objective] = store.log()
    assert (objective.id, objective.name) == ("obj-1", "Fix build")
    thread = objective.threads[0]
    assert [t.id for t in objective.threads] == ["t-1", "t-2"]
    assert [r.id for r in thread.runs] == ["run-1", "run-2"]
    assert thread.runs[0].snapshots == [first]
    assert thread.runs[1].snapshots[0].message == "second run\n\nbody"
    assert second.parents == (first.commit,)
    assert second.meta.objective_name == "Fix build"  # inherited from the thread
    assert store.heads()["refs/narrative/threads/t-1"] == second.commit
    assert store.find(first.snapshot_id) == first
    assert store.find(first.commit[:10]) == first


def test_metadata_round_trips_any_name(open_store: OpenStore) -> None:
    store = open_store("a")
    info = store.snapshot("o", "t", "r", name='a "quoted"\nname: é', run_name="Run: 1")
    commit = store.repo.object_store[info.commit.encode()]
    meta = parse_message(commit.message)  # type: ignore[attr-defined]
    assert meta is not None
    assert meta.snapshot_name == 'a "quoted"\nname: é'
    assert meta.run_name == "Run: 1"
    assert meta.environment == "a"


def test_a_thread_stays_in_its_objective(open_store: OpenStore) -> None:
    store = open_store("a")
    store.snapshot("o1", "t", "r")
    with pytest.raises(HierarchyError):
        store.snapshot("o2", "t", "r")


@pytest.mark.parametrize(
    "bad", ["", "..", "a..b", "-x", "a/b", "a b", "x.lock", "a.", "é", "a" * 200]
)
def test_invalid_ids_are_refused(open_store: OpenStore, bad: str) -> None:
    store = open_store("a")
    with pytest.raises(InvalidNameError):
        store.snapshot("o", bad, "r")


def test_state_dir_must_live_outside_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    with pytest.raises(NarrativeError, match="outside"):
        NarrativeStore.open(tmp_path / "ws" / ".state", tmp_path / "ws", "a")


def test_gitignore_is_honoured_and_user_git_is_untouched(open_store: OpenStore) -> None:
    store = open_store("a")
    ws = store.workspace
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / ".git" / "info").mkdir(exist_ok=True)
    (ws / ".git" / "info" / "exclude").write_text("secret.txt\n")
    write_files(
        ws,
        {
            ".gitignore": "*.log\nbuild/\n!keep.log\n",
            "app.py": "x",
            "debug.log": "noise",
            "keep.log": "kept",
            "build/out.bin": "binary",
            "secret.txt": "s",
            "sub/.gitignore": "*.tmp\n",
            "sub/a.tmp": "t",
            "sub/b.txt": "b",
            "other/a.tmp": "kept: rule only applies under sub/",
            "nested/.GIT/config": "never captured",
            "Git~1/config": "never captured either (the 8.3 name of .git)",
        },
    )
    before = sorted((p, p.stat().st_mtime_ns) for p in (ws / ".git").rglob("*"))
    info = store.snapshot("o", "t", "r")
    files = _tree_paths(store, info.tree)
    assert files == [
        ".gitignore",
        "app.py",
        "keep.log",
        "other/a.tmp",
        "sub/.gitignore",
        "sub/b.txt",
    ]
    assert sorted((p, p.stat().st_mtime_ns) for p in (ws / ".git").rglob("*")) == before


def test_gitignore_changes_apply_to_known_files(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {"a.txt": "a", "d/b.txt": "b"})
    store.snapshot("o", "t", "r")
    write_files(store.workspace, {".gitignore": "b.txt\n"})
    info = store.snapshot("o", "t", "r")
    assert _tree_paths(store, info.tree) == [".gitignore", "a.txt"]


def test_incremental_snapshot_reads_only_changed_files(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {f"d{i % 5}/f{i}.txt": str(i) for i in range(200)})
    full = scan_workspace(store.workspace, StatCache())
    assert len(full.hashed) == 200
    old = 1_000_000_000
    for path in store.workspace.rglob("*.txt"):
        os.utime(path, ns=(old, old))  # out of the racy window
    store.snapshot("o", "t", "r")
    write_files(store.workspace, {"d1/f1.txt": "changed", "new.txt": "new"})
    (store.workspace / "d2" / "f2.txt").unlink()
    cache = StatCache.load(store.state_dir / "statcache")
    scan = scan_workspace(store.workspace, cache)
    assert sorted(scan.hashed) == [b"d1/f1.txt", b"new.txt"]
    info = store.snapshot("o", "t", "r")
    assert read_files(store.workspace) == _restored_elsewhere(store, info.snapshot_id)


def test_snapshots_are_written_as_packs(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {f"f{i}.txt": str(i) for i in range(50)})
    store.snapshot("o", "t", "r")
    objects = Path(store.repo.object_store.path)
    loose = [p for p in objects.iterdir() if len(p.name) == 2 and any(p.iterdir())]
    assert loose == []
    assert len(list((objects / "pack").glob("*.pack"))) == 1


def test_restore_round_trips_files_links_and_modes(open_store: OpenStore) -> None:
    store = open_store("a")
    ws = store.workspace
    write_files(ws, {"a.txt": "one", "dir/b.txt": "b", "run.sh": "#!/bin/sh\n"})
    (ws / "run.sh").chmod(0o755)
    (ws / "link").symlink_to("a.txt")
    first = store.snapshot("o", "t", "r")
    write_files(ws, {"a.txt": "two", "c.txt": "c"})
    (ws / "dir" / "b.txt").unlink()
    (ws / "run.sh").chmod(0o644)
    store.snapshot("o", "t", "r")
    store.restore(first.snapshot_id)
    assert read_files(ws) == {"a.txt": "one", "dir/b.txt": "b", "run.sh": "#!/bin/sh\n"}
    assert os.readlink(ws / "link") == "a.txt"
    assert (ws / "run.sh").stat().st_mode & 0o100
    assert store.dirty_paths() == []


def test_restore_refuses_to_clobber_changes_unless_forced(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {"a.txt": "one"})
    first = store.snapshot("o", "t", "r")
    write_files(store.workspace, {"a.txt": "two"})
    store.snapshot("o", "t", "r")
    write_files(store.workspace, {"a.txt": "user edit", "new.txt": "untracked"})
    with pytest.raises(DirtyWorkspaceError) as caught:
        store.restore(first.snapshot_id)
    assert caught.value.paths == ["a.txt", "new.txt"]
    assert read_files(store.workspace) == {"a.txt": "user edit", "new.txt": "untracked"}
    store.restore(first.snapshot_id, force=True)
    assert read_files(store.workspace) == {"a.txt": "one"}


def test_restore_keeps_ignored_files(open_store: OpenStore) -> None:
    store = open_store("a")
    write_files(store.workspace, {".gitignore": "*.log\n", "a.txt": "a", "x.log": "log"})
    first = store.snapshot("o", "t", "r")
    write_files(store.workspace, {"b.txt": "b"})
    store.snapshot("o", "t", "r")
    store.restore(first.commit)
    assert read_files(store.workspace) == {".gitignore": "*.log\n", "a.txt": "a", "x.log": "log"}


def test_unknown_snapshot(open_store: OpenStore) -> None:
    store = open_store("a")
    with pytest.raises(UnknownSnapshotError):
        store.restore("deadbeef")


def _tree_paths(store: NarrativeStore, tree: str) -> list[str]:
    from codebolt_topo.narrative.checkout import diff_trees

    get = store._lookup([])
    return sorted(p.decode() for p, _o, _n in diff_trees(get, None, tree.encode()))


def _restored_elsewhere(store: NarrativeStore, snapshot: str) -> dict[str, str]:
    target = store.state_dir.parent / "restored"
    target.mkdir()
    other = NarrativeStore(store.state_dir, target, "a", store.limits)
    try:
        (store.state_dir / "workspace.json").unlink()
        (store.state_dir / "statcache").unlink()
        other.restore(snapshot)
    finally:
        other.close()
    return read_files(target)


def test_pack_index_matches_dulwichs_writer_byte_for_byte() -> None:
    import io
    import random

    from dulwich.pack import write_pack_index

    from codebolt_topo.narrative.packs import pack_index

    rng = random.Random(5)
    offsets = [12, 4096, (1 << 31) - 1, 1 << 31, 5 << 32]  # both sides of the 64-bit table
    entries = [
        (rng.randbytes(20), rng.choice(offsets) + i, rng.getrandbits(32)) for i in range(300)
    ]
    checksum = rng.randbytes(20)
    expected = io.BytesIO()
    write_pack_index(expected, sorted(entries), checksum, version=2)
    assert pack_index(entries, checksum) == expected.getvalue()
    empty = io.BytesIO()
    write_pack_index(empty, [], checksum, version=2)
    assert pack_index([], checksum) == empty.getvalue()
