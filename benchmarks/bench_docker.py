"""Docker provider figures next to docker compose: apply N container nodes to RUNNING against
``compose up`` of N equivalent containers, destroy against ``compose down``; ``exec true``
through the daemon against ``docker exec`` into the same container.

Run: ``python benchmarks/bench_docker.py [--sizes 10 30] [--rounds 3]`` (needs the engine, the
node image: ``scripts/build-node-image.sh``, and ``docker compose`` or ``docker-compose``).

The compose peer runs the same image and the same program: each service is what the docker
provider creates for a node (the node daemon with its launch config in the environment, ``init``,
the daemon's port published on 127.0.0.1, a named volume on /workspace, host.docker.internal,
the project's default network). ``up`` returns once every container runs (Debian's
docker-compose 1.29 has no ``--wait``; for services without a health check ``--wait`` waits for
exactly that), where our apply also waits until each daemon answers on its port: the peer is
the looser of the two. Our destroy first reads every node's history to archive it, which compose
has no counterpart for; ``--discard-history`` destroys with the histories given up instead, to
show the provider's part alone. Sizes alternate ours / compose, rounds give a median. It asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.history import KEEP_ALL, Discard
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.providers.docker.container_main import ENV_CONFIG
from codebolt_topo.providers.docker.image import DEFAULT_IMAGE
from codebolt_topo.providers.docker.names import CONTAINER_PORT, WORKSPACE
from codebolt_topo.wire.config import LaunchConfig, token_digest

__all__ = ["main"]

ROUNDS = 30


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min)"


def _compose_command() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


def _topology(directory: Path, count: int) -> Path:
    nodes = "".join(f"  n{i}: {{provider: docker}}\n" for i in range(count))
    path = directory / f"bench{count}" / "topology.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"name: bench{count}\nnodes:\n{nodes}")
    return path


def _compose_file(directory: Path, count: int) -> Path:
    """``count`` services shaped like the docker provider's containers (JSON is YAML)."""
    services, volumes = {}, {}
    for i in range(count):
        config = LaunchConfig(
            topology=f"peer{count}",
            node=f"n{i}",
            host="0.0.0.0",
            port=CONTAINER_PORT,
            admin_token_digest=token_digest(secrets.token_urlsafe(32)),
            workspace=WORKSPACE,
            state_dir="/home/codebolt",
        )
        services[f"n{i}"] = {
            "image": DEFAULT_IMAGE,
            "hostname": f"n{i}",
            "init": True,
            "environment": {ENV_CONFIG: config.model_dump_json()},
            "ports": [f"127.0.0.1::{CONTAINER_PORT}"],
            "volumes": [f"ws{i}:{WORKSPACE}"],
            "extra_hosts": ["host.docker.internal:host-gateway"],
        }
        volumes[f"ws{i}"] = {}
    path = directory / f"compose{count}" / "docker-compose.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"version": "3.8", "services": services, "volumes": volumes}))
    return path


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def _compose_round(compose: list[str], file: Path) -> tuple[float, float] | None:
    """Compose's up and down, or None when compose itself failed (said, and cleaned up): under
    load docker-compose 1.29's ``down`` was seen to fail on a network with "active endpoints"
    that no container held; the peer's failure should not cost the rest of the run."""
    # A project of this run's own: a network a failed down left behind (see above) stays in
    # the engine's listing, and a later run's compose would trip on it again.
    base = [*compose, "-f", str(file), "-p", f"{file.parent.name}-{os.getpid()}"]
    try:
        up = _timed([*base, "up", "-d"])
        down = _timed([*base, "down", "-v"])  # -v: our destroy removes the workspace volumes too
    except subprocess.CalledProcessError as failed:
        said = (failed.stderr or b"").decode(errors="replace").strip().splitlines()
        print(f"  compose failed ({' '.join(failed.cmd[-2:])}): {said[-1] if said else '?'}")
        subprocess.run([*base, "down", "-v"], capture_output=True)
        return None
    return up, down


def _ours_round(path: Path, discard: Discard = KEEP_ALL) -> tuple[float, float]:
    start = time.perf_counter()
    _, ok = apply_topology(path)
    applied = time.perf_counter() - start
    if not ok:
        raise SystemExit(f"apply of {path} failed")
    start = time.perf_counter()
    destroy_topology(path, discard=discard)
    return applied, time.perf_counter() - start


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


def _exec_figures(directory: Path) -> None:
    path = _topology(directory, 1)
    apply_topology(path)
    try:
        node = state_file_for(path, "bench1").load().nodes["n0"]
        assert node.url is not None
        daemon = asyncio.run(_daemon_round_trips(node.url, node.admin_token, "n0"))
        cli = _docker_exec(str(node.handle["id"]))
    finally:
        destroy_topology(path)
    d, c = statistics.median(daemon) * 1e3, statistics.median(cli) * 1e3
    print(
        f"exec true, median of {ROUNDS}: through the node daemon {d:.1f} ms, docker exec "
        f"{c:.1f} ms, ratio docker exec / daemon {c / d:.1f}x ({_load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-exec", action="store_true", help="skip the exec figures")
    parser.add_argument(
        "--discard-history",
        action="store_true",
        help="destroy without archiving the nodes' histories (the provider's part alone)",
    )
    args = parser.parse_args()
    compose = _compose_command()
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-docker-") as tmp:
        directory = Path(tmp)
        if not args.no_exec:
            _exec_figures(directory)
        if compose is None:
            print("compose peer skipped: neither docker compose nor docker-compose is installed")
            return
        version = subprocess.run([*compose, "version", "--short"], capture_output=True, text=True)
        print(
            f"apply/destroy of N docker nodes vs {' '.join(compose)} {version.stdout.strip()} up -d"
            f" / down -v of N equivalent containers ({DEFAULT_IMAGE}); median of {args.rounds} "
            "rounds (min-max), seconds; ratio = ours / compose, target <= 1.3"
            + ("; our destroy gives the histories up" if args.discard_history else "")
        )
        discard = Discard(every=True) if args.discard_history else KEEP_ALL
        for count in args.sizes:
            path, file = _topology(directory, count), _compose_file(directory, count)
            ours, theirs = [], []
            loads = []
            for _ in range(args.rounds):
                ours.append(_ours_round(path, discard))
                peer_round = _compose_round(compose, file)
                if peer_round is not None:
                    theirs.append(peer_round)
                loads.append(os.getloadavg()[0])
            if not theirs:
                print(f"  N={count:3d}: no compose round succeeded, no ratio")
                continue
            for index, (what, peer) in enumerate((("apply", "up"), ("destroy", "down"))):
                mine = [sample[index] for sample in ours]
                them = [sample[index] for sample in theirs]
                m, t = statistics.median(mine), statistics.median(them)
                print(
                    f"  N={count:3d} {what:7s} {m:6.2f} s ({min(mine):.2f}-{max(mine):.2f})   "
                    f"compose {peer:4s} {t:6.2f} s ({min(them):.2f}-{max(them):.2f})   "
                    f"ratio {m / t:4.2f}   load {min(loads):.1f}-{max(loads):.1f}"
                )


if __name__ == "__main__":
    main()
