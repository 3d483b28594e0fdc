"""Local daemons forked from the zygote look and behave like cold-started ones
(providers/local/zygote.py): their command line and markers, discovery, isolation, exec."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.proctree import read_stat
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.local.provider import LocalProvider
from codebolt_topo.providers.local.zygote import _start, zygote_socket

pytestmark = pytest.mark.slow

CHAIN = """name: forked
nodes: {a: {}, b: {}, c: {}}
edges: [a -> b -> c]
"""


def zygote_pid() -> int:
    """Start this process's zygote (if none runs) and wait until it listens."""
    path = zygote_socket()
    if not path.exists():
        _start(path)
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), "no zygote started"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"codebolt_topo.providers.local.zygote" in cmdline and str(path).encode() in cmdline:
                return int(entry)
    raise AssertionError("zygote process not found")


def test_daemons_are_forked_by_the_zygote_and_look_cold_started(tmp_path: Path) -> None:
    parent = zygote_pid()
    path = tmp_path / "topology.yaml"
    path.write_text(CHAIN)
    with applied_topology(path) as applied:
        pids = applied.pids()
        for node, pid in pids.items():
            stat = read_stat(pid)
            assert stat is not None
            assert stat.ppid == parent, f"{node} was not forked"
            assert stat.session == pid  # a session of its own, as a cold start
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            config = tmp_path / ".codebolt" / "forked" / "nodes" / node / "launch.json"
            assert argv == [
                sys.executable.encode(),
                b"-m",
                b"codebolt_topo.node",
                b"--config",
                str(config).encode(),
                b"--ready-fd",
                b"3",
            ]
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert f"CODEBOLT_NODE={node}".encode() in environ.split(b"\0")
        state = state_file_for(path, "forked").load()
        context = ProviderContext(
            topology="forked",
            lineage=state.lineage,
            runtime_dir=tmp_path / ".codebolt" / "forked",
            base_dir=tmp_path,
        )
        found = asyncio.run(LocalProvider(context).discover())
        assert {d.node: d.handle["pid"] for d in found} == pids  # a killed apply finds them
        out = applied.run(
            "c", ["sh", "-c", "echo from $CODEBOLT_NODE; cat ../../../../forked.state.json"]
        )
        assert out["c"].stdout == b"from c\n"  # env as launched; the state stays hidden
        assert b"No such file" in out["c"].stderr


def test_without_the_zygote_a_daemon_starts_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = zygote_pid()
    monkeypatch.setenv("CODEBOLT_ZYGOTE", "0")
    path = tmp_path / "topology.yaml"
    path.write_text("name: cold\nnodes: {a: {}}\n")
    with applied_topology(path) as applied:
        stat = read_stat(applied.pids()["a"])
        assert stat is not None
        assert stat.ppid != parent
