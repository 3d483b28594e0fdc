"""Small defects of issue 17 (item 7), each through the surface that showed it: the restore
hint names the flag, credentials read from a str path, ``init`` keeps the state out of git and
the schema where a clone has it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_helpers import codebolt

from codebolt_topo.credentials import Credentials, read_credentials, write_credentials


def test_restore_on_a_dirty_workspace_names_the_force_flag(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    workspace.mkdir()
    (workspace / "app.py").write_text("print(1)\n")
    made = codebolt(
        "narrative",
        "snapshot",
        "--objective",
        "o",
        "--thread",
        "t",
        "--run",
        "r",
        "--json",
        "--workspace",
        str(workspace),
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    snapshot = json.loads(made.stdout)["snapshot_id"]
    (workspace / "app.py").write_text("print(2)\n")
    refused = codebolt(
        "narrative", "restore", snapshot, "--workspace", str(workspace), cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "workspace has uncommitted changes: app.py" in refused.stderr
    assert "pass --force" in refused.stderr
    assert "force=True" not in refused.stderr
    forced = codebolt(
        "narrative", "restore", snapshot, "--force", "--workspace", str(workspace), cwd=tmp_path
    )
    assert forced.returncode == 0, forced.stderr
    assert (workspace / "app.py").read_text() == "print(1)\n"


def test_credentials_are_read_and_written_from_a_str_path(tmp_path: Path) -> None:
    path = str(tmp_path / "a.credentials.json")
    write_credentials(path, Credentials("t", "a", "ws://127.0.0.1:1", "secret"))
    assert read_credentials(path) == Credentials("t", "a", "ws://127.0.0.1:1", "secret")
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="readable by others"):
        read_credentials(path)


def test_init_keeps_the_state_out_of_git_and_the_schema_in_it(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".gitignore").write_text("*.pyc")  # an existing file is extended, not replaced
    result = codebolt("init", "--shape", "tree", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / ".gitignore").read_text().splitlines() == [
        "*.pyc",
        "# codebolt state: admin tokens, logs, workspaces",
        ".codebolt/",
    ]
    assert (
        (project / "topology.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=topology.schema.json\n")
    )
    assert json.loads((project / "topology.schema.json").read_text())["title"]
    assert not (project / ".codebolt").exists()
    again = codebolt("init", "--force", cwd=project)
    assert again.returncode == 0, again.stderr
    assert (project / ".gitignore").read_text().count(".codebolt/") == 1
    if subprocess.run(["git", "--version"], capture_output=True, check=False).returncode:
        return
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / ".codebolt").mkdir()
    (project / ".codebolt" / "proj.state.json").write_text("{}")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(staged) == [".gitignore", "topology.schema.json", "topology.yaml"]
