"""Swarm provider figures next to the engine's own CLI: apply N swarm nodes to RUNNING against
``docker service create`` of the same image N times, and the time to healed after a worker dies.

Run as root: ``python benchmarks/bench_swarm.py [--sizes 10 30]`` (needs the engine, Debian's
``docker-registry``, and the node image: ``scripts/build-node-image.sh``). It starts the swarm
the tests use (``tests/swarm/cluster.py``: this engine as manager, two docker-in-docker workers,
the image through a real registry) and restores the engine's swarm state at the end.

The peer runs the same image and the same daemon: N ``docker service create --detach`` of one
replica each on an overlay (``dnsrr``, the launch config in the environment, as the docker
image's entrypoint reads it), timed until every service has a running task. Our apply also
creates a secret and a relay per node and waits until each daemon answers through its relay and
is wired: the peer is the looser of the two. Healing: a worker holding tasks is killed
(``docker kill`` of its container) and the reconciler's passes run until every service has one
running task elsewhere and work reaches every node again. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "swarm"))

from cluster import SwarmCluster, client, running_cluster  # noqa: E402
from swarm_helpers import run_on, running_tasks, state_of  # noqa: E402

from codebolt_topo.engine.history import Discard  # noqa: E402
from codebolt_topo.engine.operations import apply_topology, destroy_topology  # noqa: E402
from codebolt_topo.engine.reconcile import Reconciler  # noqa: E402
from codebolt_topo.providers.docker.container_main import ENV_CONFIG  # noqa: E402
from codebolt_topo.wire.config import LaunchConfig, token_digest  # noqa: E402

__all__ = ["main"]

HEARTBEAT = "heartbeat: {interval: 1s, timeout: 2s, suspect_after: 10s, fail_after: 120s}"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min)"


def _node_image() -> str:
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-node-image.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    return built.stdout.strip().splitlines()[-1]


def _topology(directory: Path, image: str, count: int) -> Path:
    nodes = "".join(f'  n{i}: {{provider: swarm, image: "{image}"}}\n' for i in range(count))
    path = directory / f"swarm{count}" / "topology.yaml"
    path.parent.mkdir(exist_ok=True)
    edges = ", ".join(f"n0 -> n{i}" for i in range(1, count))
    path.write_text(f"name: swarm{count}\n{HEARTBEAT}\nnodes:\n{nodes}edges: [{edges}]\n")
    return path


def _ours(path: Path) -> tuple[float, float]:
    started = time.perf_counter()
    apply_topology(path)
    applied = time.perf_counter() - started
    started = time.perf_counter()
    destroy_topology(path, discard=Discard(every=True))
    return applied, time.perf_counter() - started


def _peer(image: str, count: int) -> tuple[float, float]:
    """``docker service create`` N times, then ``docker service rm``; each timed until done."""
    network = f"bench-peer-{secrets.token_hex(4)}"
    subprocess.run(
        ["docker", "network", "create", "-d", "overlay", "--attachable", network],
        check=True,
        capture_output=True,
    )
    names = [f"{network}-n{i}" for i in range(count)]
    started = time.perf_counter()
    for name in names:
        config = LaunchConfig(
            topology="peer",
            node=name,
            host="0.0.0.0",
            port=3100,
            admin_token_digest=token_digest(secrets.token_urlsafe(32)),
            workspace="/workspace",
            state_dir="/home/codebolt",
        )
        subprocess.run(
            [
                *("docker", "service", "create", "--detach", "--quiet", "--name", name),
                *("--network", network, "--endpoint-mode", "dnsrr", "--init"),
                *("--env", f"{ENV_CONFIG}={config.model_dump_json()}", image),
            ],
            check=True,
            capture_output=True,
        )
    while not all(running_tasks(name) for name in names):
        time.sleep(0.1)
    created = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(["docker", "service", "rm", *names], check=True, capture_output=True)
    label = "com.docker.swarm.service.name"
    while any(
        c["Labels"].get(label) in names
        for c in client().api.containers(all=True, filters={"label": label})
    ):
        time.sleep(0.1)
    removed = time.perf_counter() - started
    for _ in range(100):
        if (
            subprocess.run(["docker", "network", "rm", network], capture_output=True).returncode
            == 0
        ):
            break
        time.sleep(0.2)
    return created, removed


def _heal_after_losing_a_worker(swarm: SwarmCluster, path: Path) -> tuple[str, float, int]:
    """Kill the worker holding most tasks; seconds until healed, and how many tasks it held."""
    apply_topology(path)
    try:
        nodes = state_of(path).nodes
        services = [node.handle["service"] for node in nodes.values()]
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in client().api.nodes()}
        hosts = [hostnames[running_tasks(s)[0]["NodeID"]] for s in services]
        worker = max(swarm.workers, key=lambda w: hosts.count(w.name))
        targets = [n for n in nodes if n != "n0"]

        def healed() -> bool:
            tasks = [running_tasks(s) for s in services]
            if any(len(t) != 1 for t in tasks):
                return False
            ids = {hostnames.get(t[0]["NodeID"], "") for t in tasks}
            if worker.name in ids:
                return False
            try:
                results = run_on(path, targets, "true", timeout=10)
            except Exception:
                return False
            return all(results[t].exit is not None and results[t].exit.code == 0 for t in targets)

        async def passes() -> float:
            reconciler = Reconciler(path)
            started = time.monotonic()
            try:
                while not await asyncio.to_thread(healed):
                    await reconciler.pass_once()
                    await asyncio.sleep(0.5)
                return time.monotonic() - started
            finally:
                await reconciler.prober.close()

        worker.container.kill()
        try:
            seconds = asyncio.run(passes())
        finally:
            worker.container.start()
            swarm.wait_ready(worker, timeout=120)
        return worker.name, seconds, hosts.count(worker.name)
    finally:
        destroy_topology(path, discard=Discard(every=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10])
    arguments = parser.parse_args()
    print(f"swarm: three machines (this engine + two docker-in-docker workers), {_load()}")
    with running_cluster(_node_image()) as swarm, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        # One untimed apply first, so both sides find the image on every worker.
        _ours(_topology(directory, swarm.image, 3))
        for count in arguments.sizes:
            peer_up, peer_down = _peer(swarm.image, count)
            up, down = _ours(_topology(directory, swarm.image, count))
            print(
                f"{count} nodes: apply to RUNNING {up:.1f} s, destroy {down:.1f} s; "
                f"docker service create x{count} to running {peer_up:.1f} s, "
                f"service rm {peer_down:.1f} s; ratio {up / peer_up:.1f}x ({_load()})"
            )
        name, seconds, held = _heal_after_losing_a_worker(
            swarm, _topology(directory, swarm.image, 10)
        )
        print(f"worker {name} killed holding {held} of 10 tasks: healed in {seconds:.1f} s")
        print(f"({_load()})")


if __name__ == "__main__":
    main()
