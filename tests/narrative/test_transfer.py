"""Bundles and tarballs between two stores, and interoperability with the git CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import OpenStore
from narrative_crafting import read_files, write_files

from codebolt_topo.narrative import MissingPrerequisiteError, Selection
from codebolt_topo.narrative.hierarchy import ObjectiveLog

GIT = "/usr/local/bin/git"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def _shape(log: list[ObjectiveLog]) -> list[tuple[str, str, str, str, str]]:
    return [
        (o.id, t.id, r.id, s.commit, s.meta.snapshot_name)
        for o in log
        for t in o.threads
        if t.source_env is None
        for r in t.runs
        for s in r.snapshots
    ]


def test_round_trip_both_directions_keeps_the_hierarchy(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x.txt": "1"})
    a.snapshot("obj", "t1", "r1", name="one", objective_name="Objective")
    write_files(a.workspace, {"x.txt": "2", "y/z.txt": "z"})
    second = a.snapshot("obj", "t1", "r2", name="two")
    report = b.import_bundle(a.export_bundle(), "a")
    assert [c.thread for c in report.created] == ["t1"]
    assert _shape(b.log()) == _shape(a.log())
    assert b.log()[0].name == "Objective"
    b.restore(second.snapshot_id)
    assert read_files(b.workspace) == {"x.txt": "2", "y/z.txt": "z"}
    write_files(b.workspace, {"x.txt": "from b"})
    third = b.snapshot("obj", "t1", "r3", name="three")
    back = a.import_bundle(b.export_bundle(have=a.heads().values()), "b")
    assert [c.new for c in back.updated] == [third.commit]
    assert _shape(a.log()) == _shape(b.log())


def test_incremental_bundle_sends_only_what_changed(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {f"d/f{i}.txt": "x" * 100 + str(i) for i in range(100)})
    a.snapshot("o", "t", "r")
    b.import_bundle(a.export_bundle(), "a")
    write_files(a.workspace, {"d/f1.txt": "changed"})
    a.snapshot("o", "t", "r")
    incremental = a.export_bundle(have=set(b.heads().values()))
    assert incremental.splitlines()[1].startswith(b"-")  # a prerequisite
    report = b.import_bundle(incremental, "a")
    assert report.objects_written == 4  # commit, root tree, d/, d/f1.txt
    assert b.heads() == a.heads()


def test_importing_twice_is_a_no_op(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "1"})
    a.snapshot("o", "t", "r")
    data = a.export_bundle()
    assert b.import_bundle(data, "a").changed
    packs = sorted((b.state_dir / "shadow.git" / "objects" / "pack").iterdir())
    again = b.import_bundle(data, "a")
    assert not again.changed
    assert [c.thread for c in again.unchanged] == ["t"]
    assert sorted((b.state_dir / "shadow.git" / "objects" / "pack").iterdir()) == packs


def test_diverged_threads_are_kept_side_by_side(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "base"})
    a.snapshot("o", "t", "r")
    b.import_bundle(a.export_bundle(), "a")
    write_files(a.workspace, {"x": "a's change"})
    theirs = a.snapshot("o", "t", "r")
    b.restore(theirs.parents[0])
    write_files(b.workspace, {"x": "b's change"})
    ours = b.snapshot("o", "t", "r")
    report = b.import_bundle(a.export_bundle(), "a")
    [diverged] = report.diverged
    assert diverged.ref == "refs/narrative/remotes/a/threads/t"
    assert b.heads()["refs/narrative/threads/t"] == ours.commit
    threads = b.log()[0].threads
    assert [(t.id, t.source_env, t.head) for t in threads] == [
        ("t", None, ours.commit),
        ("t", "a", theirs.commit),
    ]
    assert not b.import_bundle(a.export_bundle(), "a").changed


def test_selection_by_thread_and_objective(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    a.snapshot("o1", "t1", "r")
    a.snapshot("o1", "t2", "r")
    a.snapshot("o2", "t3", "r")
    b.import_bundle(a.export_bundle(Selection.objective("o1")), "a")
    assert sorted(b.heads()) == ["refs/narrative/threads/t1", "refs/narrative/threads/t2"]
    b.import_bundle(a.export_bundle(Selection.thread("t3")), "a")
    assert b.heads() == a.heads()


def test_missing_prerequisites_are_reported(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    first = a.snapshot("o", "t", "r")
    a.snapshot("o", "t", "r")
    with pytest.raises(MissingPrerequisiteError) as caught:
        b.import_bundle(a.export_bundle(have={first.commit}), "a")
    assert caught.value.missing == [first.commit]
    assert b.heads() == {}


def test_tarball_round_trip(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x.txt": "1", "d/e.txt": "e"})
    (a.workspace / "link").symlink_to("d/e.txt")
    (a.workspace / "x.txt").chmod(0o755)
    info = a.snapshot("obj", "t", "r", name="tarred", objective_name="Obj")
    report = b.import_tar(a.export_tar(info.snapshot_id))
    assert [c.new for c in report.created] == [info.commit]  # identical commit
    assert b.find(info.snapshot_id).meta == info.meta
    b.restore(info.snapshot_id)
    assert read_files(b.workspace) == {"x.txt": "1", "d/e.txt": "e"}
    assert (b.workspace / "link").readlink() == Path("d/e.txt")
    assert not b.import_tar(a.export_tar(info.snapshot_id)).changed


def test_tarball_of_a_later_snapshot_is_reparented(open_store: OpenStore) -> None:
    a, b = open_store("a"), open_store("b")
    a.snapshot("o", "t", "r")
    write_files(a.workspace, {"x": "2"})
    second = a.snapshot("o", "t", "r", name="later")
    report = b.import_tar(a.export_tar(second.commit))
    [created] = report.created
    got = b.find(second.snapshot_id)
    assert got.commit == created.new != second.commit
    assert got.parents == ()
    assert got.tree == second.tree
    assert got.meta == second.meta


def test_git_verifies_and_fetches_our_bundles(open_store: OpenStore, tmp_path: Path) -> None:
    a = open_store("a")
    write_files(a.workspace, {"x": "1"})
    first = a.snapshot("o", "t", "r")
    write_files(a.workspace, {"x": "2", "y": "y"})
    a.snapshot("o", "t", "r")
    full, incremental = tmp_path / "full.bundle", tmp_path / "inc.bundle"
    full.write_bytes(a.export_bundle())
    incremental.write_bytes(a.export_bundle(have={first.commit}))
    repo = tmp_path / "clone"
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "bundle", "verify", str(full))
    _git(repo, "fetch", "-q", str(full), "refs/narrative/*:refs/narrative/*")
    assert (
        _git(repo, "rev-parse", "refs/narrative/threads/t").strip()
        == a.heads()["refs/narrative/threads/t"]
    )
    _git(repo, "fsck", "--strict")
    _git(repo, "bundle", "verify", str(incremental))
    trailers = _git(
        repo, "log", "-1", "--format=%(trailers:key=Narrative-Thread)", "refs/narrative/threads/t"
    )
    assert trailers.strip() == "Narrative-Thread: t"


def test_git_cli_bundles_import(open_store: OpenStore, tmp_path: Path) -> None:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "1"})
    first = a.snapshot("o", "t", "r")
    write_files(a.workspace, {"x": "2"})
    a.snapshot("o", "t", "r")
    repo = tmp_path / "relay"
    _git(tmp_path, "init", "-q", str(repo))
    (tmp_path / "ours.bundle").write_bytes(a.export_bundle())
    _git(repo, "fetch", "-q", str(tmp_path / "ours.bundle"), "refs/narrative/*:refs/narrative/*")
    _git(
        repo,
        "bundle",
        "create",
        "-q",
        str(tmp_path / "git.bundle"),
        f"{first.commit}..refs/narrative/threads/t",
    )
    _git(repo, "bundle", "create", "-q", str(tmp_path / "full.bundle"), "refs/narrative/threads/t")
    with pytest.raises(MissingPrerequisiteError):
        b.import_bundle((tmp_path / "git.bundle").read_bytes(), "a")
    b.import_bundle((tmp_path / "full.bundle").read_bytes(), "a")
    assert b.heads() == a.heads()
    c = open_store("c")
    c.import_tar(a.export_tar(first.snapshot_id))
    report = c.import_bundle((tmp_path / "git.bundle").read_bytes(), "a")
    assert report.updated
    assert c.heads() == a.heads()


def _pack_of(bundle: bytes) -> bytes:
    return bundle[bundle.index(b"\n\n") + 2 :]


def test_git_cli_delta_and_thin_packs_are_kept_as_sent_and_completed(
    open_store: OpenStore, tmp_path: Path
) -> None:
    """git's bundles carry deltas (and, incremental, deltas against the prerequisites): the
    pack is stored as it came, a thin one completed with its bases, and git finds both sound."""
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    text = "".join(f"line {i} of a file long enough for git to delta\n" for i in range(400))
    write_files(a.workspace, {"big.txt": text, "twin.txt": text + "twin\n"})
    first = a.snapshot("o", "t", "r")
    write_files(a.workspace, {"big.txt": text.replace("line 7 ", "line seven ")})
    a.snapshot("o", "t", "r")
    repo = tmp_path / "relay"
    _git(tmp_path, "init", "-q", str(repo))
    (tmp_path / "ours.bundle").write_bytes(a.export_bundle())
    _git(repo, "fetch", "-q", str(tmp_path / "ours.bundle"), "refs/narrative/*:refs/narrative/*")
    full, thin = tmp_path / "full.bundle", tmp_path / "thin.bundle"
    _git(repo, "bundle", "create", "-q", str(full), "refs/narrative/threads/t")
    _git(repo, "bundle", "create", "-q", str(thin), f"{first.commit}..refs/narrative/threads/t")

    b.import_bundle(full.read_bytes(), "a")
    assert b.heads() == a.heads()
    [stored] = Path(b.repo.object_store.pack_dir).glob("*.pack")
    assert stored.read_bytes() == _pack_of(full.read_bytes())  # deltas kept, nothing re-encoded
    assert "delta" in _git(tmp_path, "verify-pack", "-v", str(stored.with_suffix(".idx")))
    _git(b.state_dir / "shadow.git", "fsck", "--strict", "--no-dangling")

    c.import_tar(a.export_tar(first.snapshot_id))
    before = set(Path(c.repo.object_store.pack_dir).glob("*.pack"))
    thin_pack = _pack_of(thin.read_bytes())
    report = c.import_bundle(thin.read_bytes(), "a")
    assert report.updated
    assert c.heads() == a.heads()
    [added] = set(Path(c.repo.object_store.pack_dir).glob("*.pack")) - before
    completed = added.read_bytes()
    assert completed[12 : len(thin_pack) - 20] == thin_pack[12:-20]  # received objects unchanged
    assert len(completed) > len(thin_pack)  # ... and the external base appended after them
    _git(tmp_path, "verify-pack", str(added.with_suffix(".idx")))
    _git(c.state_dir / "shadow.git", "fsck", "--strict", "--no-dangling")
    c.restore(a.find(a.heads()["refs/narrative/threads/t"]).snapshot_id)
    assert read_files(c.workspace) == read_files(a.workspace)
