"""Diverged copies travel on: export with remotes, import keeps their origin, have() sampling."""

from __future__ import annotations

import pytest
from conftest import OpenStore
from narrative_crafting import write_files

from codebolt_topo.narrative import InvalidNameError, Selection
from codebolt_topo.narrative.hierarchy import SnapshotInfo
from codebolt_topo.narrative.store import NarrativeStore

Diverged = tuple[NarrativeStore, NarrativeStore, SnapshotInfo, SnapshotInfo]


def _diverge(open_store: OpenStore) -> Diverged:
    a, b = open_store("a"), open_store("b")
    write_files(a.workspace, {"x": "a"})
    ours = a.snapshot("o", "t", "r")
    write_files(b.workspace, {"x": "b"})
    theirs = b.snapshot("o", "t", "r")
    assert [c.thread for c in a.import_bundle(b.export_bundle(), "b").diverged] == ["t"]
    return a, b, ours, theirs


def test_copies_are_re_exported_under_their_origin(open_store: OpenStore) -> None:
    a, _b, ours, theirs = _diverge(open_store)
    c = open_store("c")
    assert "refs/narrative/remotes/b/threads/t" not in a.export_bundle().decode("latin-1")
    with pytest.raises(InvalidNameError):  # copies only when the importer opts in
        c.import_bundle(a.export_bundle(Selection.everything(remotes=True)), "a")
    report = c.import_bundle(a.export_bundle(Selection.everything(remotes=True)), "a", copies=True)
    assert sorted(x.ref for x in report.created) == [
        "refs/narrative/remotes/b/threads/t",
        "refs/narrative/threads/t",
    ]
    assert c.heads(include_remotes=True) == a.heads(include_remotes=True)
    threads = c.log()[0].threads
    assert [(t.source_env, t.head) for t in threads] == [(None, ours.commit), ("b", theirs.commit)]
    again = c.import_bundle(a.export_bundle(Selection.everything(remotes=True)), "a", copies=True)
    assert not again.changed


def test_a_copy_of_our_own_thread_coming_back_is_unchanged(open_store: OpenStore) -> None:
    a, b, _ours, _theirs = _diverge(open_store)
    b.import_bundle(a.export_bundle(), "a")  # b keeps a's t beside its own
    report = a.import_bundle(b.export_bundle(Selection.everything(remotes=True)), "b", copies=True)
    assert [x.ref for x in report.unchanged] == [
        "refs/narrative/remotes/a/threads/t",
        "refs/narrative/remotes/b/threads/t",
    ]


def test_copies_move_forward_and_conflicting_ones_are_kept_apart(open_store: OpenStore) -> None:
    a, b, _ours, theirs = _diverge(open_store)
    write_files(b.workspace, {"x": "b2"})
    newer = b.snapshot("o", "t", "r")
    c = open_store("c")
    c.import_bundle(a.export_bundle(Selection.everything(remotes=True)), "a", copies=True)
    a.import_bundle(b.export_bundle(have=a.have()), "b")
    report = c.import_bundle(a.export_bundle(Selection.everything(remotes=True)), "a", copies=True)
    assert [(x.ref, x.old, x.new) for x in report.updated] == [
        ("refs/narrative/remotes/b/threads/t", theirs.commit, newer.commit)
    ]
    d = open_store("d")
    write_files(d.workspace, {"x": "wiped b"})
    d.snapshot("o", "t", "r")
    other = open_store("b2")  # pretend b's history was wiped: same name, unrelated commits
    write_files(other.workspace, {"x": "new b"})
    fresh = other.snapshot("o", "t", "r")
    d.import_bundle(other.export_bundle(), "b")
    report = c.import_bundle(d.export_bundle(Selection.everything(remotes=True)), "d", copies=True)
    assert ("refs/narrative/remotes/b.via.d/threads/t", fresh.commit) in [
        (x.ref, x.new) for x in report.created
    ]


def test_have_lists_recent_commits_then_powers_of_two(open_store: OpenStore) -> None:
    a = open_store("a")
    commits = [a.snapshot("o", "t", "r").commit for _ in range(40)]
    newest_first = commits[::-1]
    expected = {newest_first[i] for i in range(40) if i < 4 or i & (i - 1) == 0}
    assert set(a.have(recent=4)) == expected
    assert len(a.have()) == 32 + 1  # 32 newest, then depth 32 (depth 64 does not exist)
