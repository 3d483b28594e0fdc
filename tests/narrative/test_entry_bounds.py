"""An import run by the entry point (as on a node) stops when its sender goes away, and its
CPU time is capped (issue 12, finding 1: the import on the receiving node kept spinning after
the CLI that sent it was killed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OpenStore
from narrative_crafting import write_files

pytestmark = pytest.mark.timeout(120)


def test_an_import_whose_sender_stops_sending_gives_up(
    open_store: OpenStore, tmp_path: Path
) -> None:
    a = open_store("a")
    write_files(a.workspace, {f"f{i}.txt": f"{i}\n" * 500 for i in range(200)})
    a.snapshot("o", "t", "r")
    bundle = a.export_bundle()
    (tmp_path / "ws").mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.narrative", "import", "--workspace",
         str(tmp_path / "ws"), "--state-dir", str(tmp_path / "state"), "--env", "b"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "CODEBOLT_NARRATIVE_STDIN_IDLE": "1"},
    )  # fmt: skip
    assert child.stdin is not None
    child.stdin.write(bundle[: len(bundle) // 2])
    child.stdin.flush()  # ... and nothing more, nor EOF: the sender is gone
    try:
        child.wait(timeout=60)  # not communicate(): that would close stdin, an EOF
    finally:
        child.kill()
        child.stdin.close()
    assert child.stderr is not None
    with child.stderr:
        stderr = child.stderr.read()
    assert child.returncode == 1
    assert b"no input for 1 s: the sender went away" in stderr
    assert not any(p.name.startswith("tmp_") for p in (tmp_path / "state").rglob("*"))


def test_imports_run_with_a_cpu_cap(tmp_path: Path) -> None:
    script = (
        "import resource, sys\n"
        "from codebolt_topo.narrative.entry import bound_cpu\n"
        "bound_cpu(30)\n"
        "print(resource.getrlimit(resource.RLIMIT_CPU)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert 30 <= int(done.stdout) <= 40
