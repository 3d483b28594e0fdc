"""What a team's shared state costs, and how fast a standby watcher takes over (issue 16).

1. ``apply`` of 20 local nodes (a chain: 20 starts, 19 rewirings, every state write) from
   nothing, and ``plan`` of the same 20 running nodes with nothing to change (the state read,
   20 probes), with the state in PostgreSQL against the file backend (the default); medians of
   the rounds and the ratio. Through the Python API, so the figures are the engine's and the
   backend's, not the CLI's start-up.
2. Takeover: two ``codebolt watch`` processes (real CLI processes, ``--log-json``) on one
   PostgreSQL state, heartbeat interval 1 s (so the lease's ttl is 1 s). The leader is
   SIGKILLed together with one node's daemon; measured from the kill until the standby logs
   that it leads, and until it has replaced the killed node. The stated bound is two heartbeat
   intervals for the takeover; by design (engine/leadership.py) it is at most 1.25 x the ttl.

PostgreSQL: ``$CODEBOLT_PG_DSN`` when set, else a throwaway cluster of Debian's server started
the way the tests start theirs (tests/postgres_server.py). Figures only; nothing is asserted.
Run: ``python benchmarks/bench_team.py [--rounds N] [--trials N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from common import load_note

from codebolt_topo.engine.backends import open_backend
from codebolt_topo.engine.operations import apply_topology, destroy_topology, plan_topology
from codebolt_topo.model.backend import BackendSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_server import PostgresServer, find_bin_dir

NODES = 20
BACKENDS = {"file": "", "postgres": "backend: {type: postgres}\n"}


@contextlib.contextmanager
def postgres_dsn() -> Iterator[str | None]:
    """A DSN to a running PostgreSQL: the environment's, or a cluster started for this run."""
    if os.environ.get("CODEBOLT_PG_DSN"):
        yield os.environ["CODEBOLT_PG_DSN"]
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="codebolt-bench-pg-"))
    os.chmod(root, 0o755)
    server = PostgresServer(bin_dir, root)
    try:
        server.init()
        server.start()
        os.environ["CODEBOLT_PG_DSN"] = server.dsn
        yield server.dsn
    finally:
        os.environ.pop("CODEBOLT_PG_DSN", None)
        server.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


def _chain(name: str, backend: str, heartbeat: str = "") -> str:
    nodes = [f"n{i}" for i in range(NODES)]
    body = ", ".join(f"{node}: {{}}" for node in nodes)
    return f"name: {name}\n{backend}{heartbeat}nodes: {{{body}}}\nedges: [{' -> '.join(nodes)}]\n"


def plan_and_apply(backend: str, rounds: int, plans: int) -> tuple[list[float], list[float]]:
    """Seconds of each apply from nothing, and of each no-change plan, on ``backend``."""
    applies, planned = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topology.yaml"
        path.write_text(_chain(f"bench{uuid.uuid4().hex[:8]}", BACKENDS[backend]))
        for _ in range(rounds):
            started = time.perf_counter()
            apply_topology(path)
            applies.append(time.perf_counter() - started)
            try:
                for _ in range(plans):
                    started = time.perf_counter()
                    assert not plan_topology(path).has_changes
                    planned.append(time.perf_counter() - started)
            finally:
                destroy_topology(path)
    return applies, planned


class WatchProcess:
    """``codebolt watch --log-json`` in ``cwd``, each message stamped when it arrives."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", "watch", "--log-json"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.messages: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                message = str(json.loads(line)["message"])
            except (ValueError, KeyError):
                message = line.rstrip("\n")
            self.messages.put((time.monotonic(), message))

    def wait_for(self, text: str, timeout: float = 60.0) -> float:
        """When a message containing ``text`` arrived."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {text!r} from the watch within {timeout} s") from None
            if text in message:
                return at

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        assert self.process.stderr is not None
        self.process.stderr.close()


def _pid_of(path: Path, name: str, node: str) -> int:
    backend = open_backend(path, name, BackendSpec(type="postgres"))
    try:
        return int(backend.load(sealed_ok=True).nodes[node].handle["pid"])
    finally:
        backend.close()


def takeovers(trials: int) -> list[tuple[float, float]]:
    """(seconds to lead, seconds to heal) after the leader's SIGKILL, per trial."""
    name = f"lead{uuid.uuid4().hex[:8]}"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topology.yaml"
        heartbeat = "heartbeat: {interval: 1s, timeout: 2s}\n"
        path.write_text(
            f"name: {name}\n{BACKENDS['postgres']}{heartbeat}nodes: {{a: {{}}, b: {{}}}}\n"
            "edges: [a -> b]\n"
        )
        apply_topology(path)
        leader = WatchProcess(path.parent)
        standby: WatchProcess | None = None
        try:
            leader.wait_for("leading the watch")
            for _ in range(trials):
                standby = WatchProcess(path.parent)
                standby.wait_for("standing by")
                victim = _pid_of(path, name, "b")
                leader.process.send_signal(signal.SIGKILL)
                os.kill(victim, signal.SIGKILL)
                killed = time.monotonic()
                leader.process.wait()
                led = standby.wait_for("leading the watch") - killed
                healed = standby.wait_for("b: replaced") - killed
                results.append((led, healed))
                leader.stop()
                leader, standby = standby, None
        finally:
            leader.stop()
            if standby is not None:
                standby.stop()
            destroy_topology(path)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="applies per backend")
    parser.add_argument("--plans", type=int, default=5, help="plans per apply")
    parser.add_argument("--trials", type=int, default=3, help="leader kills")
    args = parser.parse_args()
    print(load_note())
    with postgres_dsn() as dsn:
        if dsn is None:
            print("PostgreSQL is not installed (apt-get install postgresql): nothing measured")
            return
        figures = {b: plan_and_apply(b, args.rounds, args.plans) for b in ("file", "postgres")}
        print(f"{NODES} local nodes in a chain, state on each backend (seconds, median (min-max))")
        for index, what in enumerate(("apply from nothing", "plan, no changes")):
            medians = {}
            for backend, samples in figures.items():
                shown = samples[index]
                medians[backend] = statistics.median(shown)
                print(
                    f"  {what:<20} {backend:<9} {medians[backend]:7.3f}"
                    f"  ({min(shown):.3f}-{max(shown):.3f}, {len(shown)} runs)"
                )
            print(f"  {what:<20} postgres / file: {medians['postgres'] / medians['file']:.2f}x")
        print(load_note())
        print("standby watcher after the leader's SIGKILL (heartbeat interval 1 s = lease ttl)")
        results = takeovers(args.trials)
        led = [r[0] for r in results]
        healed = [r[1] for r in results]
        print(
            f"  takes the lease    median {statistics.median(led):.2f} s"
            f"  ({', '.join(f'{s:.2f}' for s in led)}); bound 2 intervals = 2.00 s:"
            f" {statistics.median(led) / 2.0:.2f} of it"
        )
        print(
            f"  killed node healed median {statistics.median(healed):.2f} s"
            f"  ({', '.join(f'{s:.2f}' for s in healed)})"
        )
        print(load_note())


if __name__ == "__main__":
    main()
