"""Issue 2: the state file (it holds tokens) is written atomically and privately.

A crash between writing and renaming must leave the previous state whole and no temporary file
behind; the data reaches the disk (fsync of the file and of its directory) before it counts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from codebolt_topo.engine.statefile import StateFile, atomic_write


def test_a_failed_rename_leaves_the_old_state_whole_and_no_temp_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "demo.state.json"
    atomic_write(path, b'{"serial": 1}')

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write(path, b'{"serial": 2}')
    assert path.read_bytes() == b'{"serial": 1}'
    assert os.listdir(tmp_path) == ["demo.state.json"]


def test_the_new_state_is_synced_then_renamed_into_place_privately(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "demo.state.json"
    path.write_bytes(b"old")
    path.chmod(0o644)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        assert Path(dst) == path
        assert Path(src).parent == tmp_path  # same directory: the rename is atomic
        assert stat.S_IMODE(os.stat(src).st_mode) == 0o600  # private before it is visible
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(path, b"new")
    assert events == ["fsync-file", "rename", "fsync-dir"]
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_save_bumps_the_serial_and_keeps_the_lineage(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path / ".codebolt", "demo")
    state = state_file.load()
    lineage = state.lineage
    with state_file.locked("apply"):
        for _ in range(3):
            state_file.save(state)
    saved = state_file.load()
    assert (saved.serial, saved.lineage) == (3, lineage)
    assert stat.S_IMODE(state_file.path.stat().st_mode) == 0o600
