"""Running the real ``codebolt`` command in tests, and a topology applied through it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def codebolt(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; ``stdin`` (a descriptor) replaces the default empty, non-tty input."""
    return subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", *args],
        cwd=cwd,
        capture_output=stdin is None,
        text=True,
        timeout=120,
        input="" if stdin is None else None,
        stdin=stdin,
        stdout=None if stdin is None else subprocess.PIPE,
        stderr=None if stdin is None else subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def applied_through_the_cli(
    tmp_path_factory: pytest.TempPathFactory, name: str, topology: str
) -> Iterator[Path]:
    """A directory holding ``topology`` as ./topology.yaml, applied with ``codebolt apply``
    and destroyed with ``codebolt destroy`` afterwards."""
    directory = tmp_path_factory.mktemp(name)
    (directory / "topology.yaml").write_text(topology)
    result = codebolt("apply", "--auto-approve", cwd=directory)
    try:
        assert result.returncode == 0, result.stderr
        yield directory
    finally:
        codebolt("destroy", "--auto-approve", cwd=directory)
