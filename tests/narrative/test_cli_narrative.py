"""``codebolt narrative ...`` on local workspaces, as a user runs it (a subprocess each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from narrative_crafting import read_files, write_files

pytestmark = pytest.mark.slow


def _cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", "narrative", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_snapshot_log_export_import_restore(tmp_path: Path) -> None:
    laptop, server = tmp_path / "laptop", tmp_path / "server"
    laptop.mkdir()
    server.mkdir()
    write_files(laptop, {"app.py": "print(1)\n", "docs/readme.md": "hi\n"})
    out = _cli(
        "snapshot",
        "--objective",
        "ship",
        "--thread",
        "t1",
        "--run",
        "r1",
        "--name",
        "first",
        "--json",
        cwd=laptop,
    )
    info = json.loads(out.stdout)
    assert (info["environment"], info["thread"]["id"]) == ("local", "t1")
    assert (tmp_path / "laptop.narrative" / "shadow.git").is_dir()  # beside, not inside
    tree = _cli("log", cwd=laptop).stdout
    for expected in ("objective ship", "thread t1", "first"):
        assert expected in tree
    bundle = tmp_path / "t1.bundle"
    _cli("export", "-o", str(bundle), cwd=laptop)
    imported = _cli(
        "import", str(bundle), "--source-env", "laptop", "--env", "server", cwd=server
    ).stdout
    assert "created   t1" in imported
    restored = _cli(
        "restore", info["snapshot_id"], "--workspace", str(server), "--env", "server", cwd=tmp_path
    ).stdout
    assert "restored" in restored
    assert read_files(server) == read_files(laptop)


def test_tarball_and_errors(tmp_path: Path) -> None:
    ws, state = tmp_path / "ws", tmp_path / "state"
    ws.mkdir()
    write_files(ws, {"a.txt": "a\n"})
    common = ("--workspace", str(ws), "--state-dir", str(state))
    info = json.loads(
        _cli(
            "snapshot",
            "--objective",
            "o",
            "--thread",
            "t",
            "--run",
            "r",
            "--json",
            *common,
            cwd=tmp_path,
        ).stdout
    )
    tgz = tmp_path / "snap.tgz"
    _cli("export", "--tar", info["snapshot_id"], "-o", str(tgz), *common, cwd=tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    report = json.loads(
        _cli("import", str(tgz), "--json", "--workspace", str(other), cwd=tmp_path).stdout
    )
    assert [c["new"] for c in report["created"]] == [info["commit"]]
    write_files(ws, {"a.txt": "dirty\n"})
    refused = _cli("restore", info["snapshot_id"], *common, cwd=tmp_path, check=False)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: workspace has uncommitted changes: a.txt")
    inside = _cli(
        "log", "--workspace", str(ws), "--state-dir", str(ws / "s"), cwd=tmp_path, check=False
    )
    assert "must live outside the workspace" in inside.stderr
