"""Cold start: what ``codebolt --help`` and ``codebolt validate`` import (not how long they take:
timings are figures, see benchmarks/). Each heavy library left out is tens of milliseconds."""

from __future__ import annotations

import json
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


def _run(args: list[str], cwd: Path) -> tuple[set[str], str]:
    """``main(args)`` in a fresh interpreter: the heavy libraries it imported, and its stdout."""
    code = (
        "import contextlib, io, json, sys\n"
        "from codebolt_topo.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main({args!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy, 'stdout': out.getvalue()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["code"] == 0, out.stderr
    return set(report["heavy"]), report["stdout"]


@pytest.mark.parametrize("args", [["--help"], ["validate", "topology.yaml"]])
def test_help_and_validate_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "topology.yaml").write_text(
        "name: t\nnodes: {a: {}, b: {}, c: {}}\nedges: [{linear: [a, b, c]}]\n"
    )
    assert _run(args, tmp_path)[0] == set()


@pytest.mark.slow
def test_a_plain_status_of_loopback_nodes_opens_no_websocket(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``GET /info`` per node (``wire/probe.py``): the WebSocket library is not even
    imported, and every node is shown answering."""
    from cli_helpers import applied_through_the_cli

    monkeypatch.setenv("CODEBOLT_BROKER", "0")  # the full path, in this process's child
    topology = "name: looked\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n"
    with applied_through_the_cli(tmp_path_factory, "looked", topology) as directory:
        heavy, stdout = _run(["status", "--json"], directory)
    assert "websockets" not in heavy
    document = json.loads(stdout)
    beats = {row["name"]: row["heartbeat_ms"] for row in document["nodes"]}
    assert set(beats) == {"a", "b"}
    assert all(isinstance(ms, float) for ms in beats.values()), beats
