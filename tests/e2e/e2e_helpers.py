"""Helpers of the use-case tests: run an example the way its README section does.

Each test copies its example folder into a temporary directory and drives it through the real
``codebolt`` CLI (a subprocess, as a user would), so what the README shows is what is tested.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def codebolt(
    *args: str, cwd: Path, stdin: bytes | str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``codebolt ARGS`` in ``cwd``; stdout and stderr are captured as text."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        input=data or b"",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """``result``'s stdout, after checking it exited 0 (its stderr in the failure message)."""
    assert result.returncode == 0, (
        f"{result.args[3:]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def copy_example(name: str, directory: Path) -> Path:
    """Copy ``examples/<name>/`` into ``directory``; returns the copy's folder."""
    target = directory / name
    shutil.copytree(EXAMPLES / name, target)
    return target


@contextlib.contextmanager
def applied(folder: Path, file: str = "topology.yaml") -> Iterator[Path]:
    """``codebolt apply`` the example in ``folder``; ``codebolt destroy`` it afterwards."""
    try:
        ok(codebolt("apply", file, "--auto-approve", cwd=folder))
        yield folder
    finally:
        ok(codebolt("destroy", file, "--auto-approve", cwd=folder))


def workspace(folder: Path, topology: str, node: str) -> Path:
    """Where a local node of ``topology`` works by default."""
    return folder / ".codebolt" / topology / "nodes" / node / "workspace"
