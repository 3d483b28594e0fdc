"""Cold start: what ``codebolt --help`` and ``codebolt validate`` import (not how long they take:
timings are figures, see benchmarks/). Each heavy library left out is tens of milliseconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "asyncio",
    "networkx",
    "rich",
    "websockets",
    "jinja2",
    "dulwich",
    "docker",
    "e2b",
    "asyncssh",
    "ssl",
)


def _imported(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import contextlib, io, sys\n"
        "from codebolt_topo.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main({args!r})\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("args", [["--help"], ["validate", "topology.yaml"]])
def test_help_and_validate_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "topology.yaml").write_text(
        "name: t\nnodes: {a: {}, b: {}, c: {}}\nedges: [{linear: [a, b, c]}]\n"
    )
    assert _imported(args, tmp_path) == set()
