"""A job's whole process tree ends with the job, whatever its processes did to their groups.

Each job here carries a marker in its environment; every process it starts inherits it, so the
survivors of a job are the processes whose /proc environ holds the marker (a scan of the whole
machine, not of any tree we maintain).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from codebolt_topo.client import Exit, Output
from codebolt_topo.node.jobs.reaper import SWEEP_INTERVAL
from codebolt_topo.proctree import children, read_stat
from codebolt_topo.testing import Cluster

pytestmark = pytest.mark.slow

MakeCluster = Callable[..., Cluster]

# Twenty looping children, then orphans made every 10 ms: under `timeout`, which moves itself
# and all of this into a process group of its own (as a fork bomb under timeout does).
HYDRA = (
    "for i in $(seq 20); do (while :; do sleep 0.05; done) & done; "
    "while :; do (sleep 300 &); sleep 0.01; done"
)


def marked(marker: str) -> list[int]:
    """Live processes (zombies aside) whose environment carries ``marker``."""
    needle = f"CODEBOLT_TREE_TEST={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        stat = read_stat(int(entry))
        if needle in environ.split(b"\0") and stat is not None and not stat.zombie:
            found.append(int(entry))
    return found


def gone_within(marker: str, seconds: float) -> list[int]:
    """Wait up to ``seconds`` for the marked processes to be gone; returns the survivors."""
    deadline = time.monotonic() + seconds
    while (left := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def run(
    cluster: Cluster, node: str, shell: str, marker: str, timeout: float | None = None
) -> Exit:
    async with cluster.client(node) as client:
        result = await (
            await client.exec(
                node, shell=shell, timeout=timeout, env={"CODEBOLT_TREE_TEST": marker}
            )
        ).result()
    exit_ = result[node].exit
    assert exit_ is not None
    return exit_


def test_timeout_kills_a_tree_that_left_the_jobs_process_group(make_cluster: MakeCluster) -> None:
    cluster = make_cluster([], nodes=["n"])
    marker = uuid.uuid4().hex
    final = asyncio.run(
        run(cluster, "n", f"timeout 60 bash -c '{HYDRA}'; echo", marker, timeout=1.0)
    )
    assert final.timed_out
    assert gone_within(marker, 5.0) == []
    # Every orphan the kill made was collected: no zombie left under the daemon.
    time.sleep(SWEEP_INTERVAL + 0.5)
    zombies = [
        pid
        for pid in children(cluster.pids["n"])
        if (stat := read_stat(pid)) is not None and stat.zombie
    ]
    assert zombies == []


def test_cancel_kills_the_whole_tree(make_cluster: MakeCluster) -> None:
    cluster = make_cluster([], nodes=["n"])
    marker = uuid.uuid4().hex

    async def main() -> Exit:
        async with cluster.client("n") as client:
            handle = await client.exec(
                "n",
                shell=f"timeout 60 bash -c '{HYDRA}' & echo up; wait",
                env={"CODEBOLT_TREE_TEST": marker},
            )
            async for event in handle:
                if isinstance(event, Output):
                    await asyncio.sleep(0.5)
                    assert len(marked(marker)) > 20
                    await handle.cancel()
                if isinstance(event, Exit):
                    return event
        raise AssertionError("no exit")

    assert asyncio.run(main()).cancelled
    assert gone_within(marker, 5.0) == []


def test_what_a_finished_job_left_running_is_killed(make_cluster: MakeCluster) -> None:
    cluster = make_cluster([], nodes=["n"])
    marker = uuid.uuid4().hex
    shell = (
        "(sleep 300 &); nohup sleep 300 >/dev/null 2>&1 & "
        "(setsid sleep 300 >/dev/null 2>&1 < /dev/null &); echo left"
    )
    final = asyncio.run(run(cluster, "n", shell, marker))
    assert final.code == 0
    # The setsid'd one left the job's session: the sweep knows it only as a stray, killed
    # once no job that could have started it runs.
    assert gone_within(marker, SWEEP_INTERVAL + 3.0) == []


def test_a_running_job_keeps_the_helper_it_daemonized(make_cluster: MakeCluster) -> None:
    cluster = make_cluster([], nodes=["n"])
    helper, other = uuid.uuid4().hex, uuid.uuid4().hex

    async def main() -> None:
        async with cluster.client("n") as client:
            handle = await client.exec(
                "n",
                shell="(setsid sleep 300 >/dev/null 2>&1 < /dev/null &); echo up; sleep 60",
                env={"CODEBOLT_TREE_TEST": helper},
            )
            events = aiter(handle)
            while not isinstance(await anext(events), Output):
                pass
            # Another job ends (a sweep runs at its end) and a periodic sweep passes.
            assert (await run(cluster, "n", "true", other)).code == 0
            await asyncio.sleep(SWEEP_INTERVAL + 0.5)
            assert any(
                Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00"
                for pid in marked(helper)
            )
            await handle.cancel()
            async for _ in events:
                pass

    asyncio.run(main())
    assert gone_within(helper, SWEEP_INTERVAL + 3.0) == []
