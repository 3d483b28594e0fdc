"""Docker provider figures: apply N container nodes to RUNNING; ``exec true`` through the daemon
versus ``docker exec`` into the same container.

Run: ``python benchmarks/bench_docker.py`` (needs the engine and the node image:
``scripts/build-node-image.sh``). Prints one line per figure, as measured.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for

__all__ = ["main"]

ROUNDS = 30


def _topology(directory: Path, count: int) -> Path:
    nodes = "".join(f"  n{i}: {{provider: docker}}\n" for i in range(count))
    path = directory / f"bench{count}.yaml"
    path.write_text(f"name: bench{count}\nnodes:\n{nodes}")
    return path


async def _daemon_round_trips(url: str, token: str, node: str) -> list[float]:
    async with NodeClient.connect(url, token) as client:
        await (await client.exec(node, argv=["true"])).result()  # warm the connection
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            await (await client.exec(node, argv=["true"])).result()
            times.append(time.perf_counter() - start)
    return times


def _docker_exec(container: str) -> list[float]:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(["docker", "exec", container, "true"], check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for count in (1, 5, 10):
            path = _topology(Path(tmp), count)
            start = time.perf_counter()
            apply_topology(path)
            elapsed = time.perf_counter() - start
            print(f"apply {count:2d} docker node(s) to RUNNING: {elapsed:6.2f} s")
            if count == 1:
                node = state_file_for(path, "bench1").load().nodes["n0"]
                assert node.url is not None
                daemon = asyncio.run(_daemon_round_trips(node.url, node.admin_token, "n0"))
                cli = _docker_exec(str(node.handle["id"]))
                d, c = statistics.median(daemon) * 1e3, statistics.median(cli) * 1e3
                print(
                    f"exec true, median of {ROUNDS}: through the node daemon {d:.1f} ms, "
                    f"docker exec {c:.1f} ms, ratio docker exec / daemon {c / d:.1f}x"
                )
            destroy_topology(path)


if __name__ == "__main__":
    main()
