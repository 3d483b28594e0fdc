"""Backpressure end to end: ``codebolt exec`` whose stdout is read at 1 byte/s.

The node tests drive a slow reader through the Python API; here the reader is the far end of
the CLI's stdout pipe, the way a user's ``| slow-consumer`` is. The CLI must block on its
output and stop acknowledging, so the executing node pauses the child and nothing grows: not
the CLI, not the hop, not the executing node.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from local_topology import applied_topology

from codebolt_topo.client import NodeClient
from codebolt_topo.model.state import NodeState

pytestmark = pytest.mark.slow

WINDOW = 16 * 1024 * 1024  # the node's default flow-control window


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _jobs(node: NodeState) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        assert node.url is not None
        async with NodeClient.connect(node.url, node.admin_token, name=node.name) as client:
            jobs: list[dict[str, Any]] = (await client.info(detail=True))["job_list"]
            return jobs

    return asyncio.run(go())


def test_a_1_byte_per_second_reader_keeps_every_process_bounded(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: slow\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n")
    with applied_topology(path) as topo:
        pids = topo.pids()
        cli = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codebolt_topo.cli.main",
                "exec",
                "b",
                "--",
                "head",
                "-c",
                "1G",
                "/dev/zero",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert cli.stdout is not None
            samples: list[tuple[int, dict[str, int]]] = []
            read = 0
            for second in range(8):
                read += len(os.read(cli.stdout.fileno(), 1))  # 1 byte/s
                time.sleep(1)
                if second >= 3:
                    (job,) = _jobs(topo.state.nodes["b"])
                    rss = {"cli": _rss_kib(cli.pid)} | {n: _rss_kib(p) for n, p in pids.items()}
                    samples.append((job["stdout"], rss))
            (job,) = _jobs(topo.state.nodes["b"])
            assert job["paused"], job
        finally:
            cli.kill()
            cli.communicate()
    produced = [offset for offset, _ in samples]
    assert produced[-1] == produced[0], f"the child kept writing: {produced}"
    assert produced[-1] <= 4 * WINDOW, produced  # what is in flight, not what was written
    for name in ("cli", "a", "b"):
        grew = samples[-1][1][name] - samples[0][1][name]
        assert grew < 4 * 1024, f"{name} grew {grew} KiB while paused"
        assert samples[-1][1][name] < 256 * 1024, f"{name} uses {samples[-1][1][name]} KiB"
    assert read == 8
