"""The swarm provider on a real three-machine swarm (``cluster.py``): placement constraints,
work across machines, secrets out of sight, drift, healing with Swarm, and a clean destroy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import docker.types
import pytest
from cluster import SwarmCluster, Worker, client, run_engine, worker_image
from swarm_helpers import applied, run_on, running_tasks, state_of, tasks_of, wait_for

from codebolt_topo.engine.logs import node_log
from codebolt_topo.engine.operations import apply_topology, plan_topology
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.engine.runner import ApplyError
from codebolt_topo.engine.status import NodeStatus, StatusCollector
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.diff import ActionKind
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.swarm.provider import SwarmProvider
from codebolt_topo.wire.config import token_digest

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

#: Heartbeats every second, but silence must last two minutes before the orchestrator would
#: replace a node itself: a task Swarm is rescheduling is Swarm's to bring back.
HEARTBEAT = "heartbeat: {interval: 1s, timeout: 2s, suspect_after: 10s, fail_after: 120s}"


def write(tmp_path: Path, swarm: SwarmCluster, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(text.replace("IMAGE", f'"{swarm.image}"'))
    return path


def machine_of(service: str) -> str:
    """Hostname of the swarm node running ``service``'s task."""
    hostnames = {n["ID"]: n["Description"]["Hostname"] for n in client().api.nodes()}
    (task,) = running_tasks(service)
    return hostnames[task["NodeID"]]


def answers(path: Path, targets: list[str]) -> Callable[[], bool]:
    """A check that every target runs work sent through the entry node (and edges)."""

    def check() -> bool:
        try:
            results = run_on(path, targets, "echo $CODEBOLT_NODE", timeout=10)
        except Exception:
            return False
        return all(results[t].stdout == f"{t}\n".encode() for t in targets)

    return check


async def _has_room(tmp_path: Path, requires: list[str]) -> bool:
    context = ProviderContext(topology="room", lineage="0" * 32, runtime_dir=tmp_path)
    spec = NodeSpec(provider="swarm", requires=requires)
    return await SwarmProvider(context).has_room(spec)


async def _status(path: Path) -> tuple[object, list[NodeStatus]]:
    collector = StatusCollector(path)
    try:
        return await collector.collect()
    finally:
        await collector.close()


def heal(
    path: Path, healed: Callable[[], bool], timeout: float, reconciler: Reconciler | None = None
) -> float:
    """Run the reconciler's passes (what ``codebolt watch`` runs) until ``healed()``; seconds.
    A ``reconciler`` given goes on from what it saw before."""

    async def go() -> float:
        nonlocal reconciler
        reconciler = reconciler or Reconciler(path)
        started = time.monotonic()
        try:
            while True:
                await reconciler.pass_once()
                if await asyncio.to_thread(healed):
                    return time.monotonic() - started
                assert time.monotonic() - started < timeout, f"not healed within {timeout} s"
                await asyncio.sleep(0.5)
        finally:
            await reconciler.prober.close()

    return asyncio.run(go())


#: Each of the three machines is named by one node's constraint (cluster.py labels them): Swarm
#: spreads one service's tasks, not services created together, so unpinned nodes may share one.
SPREAD = f"""name: spread
{HEARTBEAT}
nodes:
  entry: {{provider: swarm, image: IMAGE, requires: ["zone:a"]}}
  gpu: {{provider: swarm, image: IMAGE, requires: [gpu]}}
  work: {{provider: swarm, image: IMAGE, count: 3, resources: {{cpus: 0.1, memory: 128m}}}}
  jail: {{provider: swarm, image: IMAGE, sandbox: true, requires: ["zone:b"]}}
edges: [entry -> gpu, entry -> work, work -> jail]
"""


def test_six_nodes_spread_with_constraints_exec_secrets_and_drift(
    swarm: SwarmCluster, tmp_path: Path
) -> None:
    path = write(tmp_path, swarm, SPREAD)
    with applied(path):
        state = state_of(path)
        assert len(state.nodes) == 6
        machines = {name: machine_of(node.handle["service"]) for name, node in state.nodes.items()}
        assert machines["gpu"] == "codebolt-swarm-w1", machines  # the only gpu-labelled machine
        assert state.nodes["gpu"].handle["swarm_node"] == "codebolt-swarm-w1"
        assert machines["jail"] == "codebolt-swarm-w2", machines  # zone b
        assert machines["entry"] not in {"codebolt-swarm-w1", "codebolt-swarm-w2"}, machines
        assert len(set(machines.values())) == 3, machines  # spread over the three machines
        _, rows = asyncio.run(_status(path))
        assert {row.name: row.where for row in rows} == machines  # status says where
        assert asyncio.run(_has_room(tmp_path, ["gpu"])) is True
        assert asyncio.run(_has_room(tmp_path, ["tpu"])) is False  # hybrid would move on
        # Work crosses machines: the entry's task sends it over the overlay to every node.
        others = [n for n in state.nodes if n != "entry"]
        results = run_on(path, others, 'echo "$CODEBOLT_NODE $(hostname) $(id -u)"')
        for name in others:
            assert results[name].stdout == f"{name} {name} 10001\n".encode(), results[name]
        assert {machines[n] for n in others} - {machines["entry"]}, machines
        # Two hops: entry -> work-2 -> jail, a sandbox on the internal overlay only.
        jail = run_on(path, ["jail"], "touch /x 2>&1; grep CapEff /proc/self/status")
        assert b"Read-only file system" in jail["jail"].stdout
        assert b"CapEff:\t0000000000000000" in jail["jail"].stdout
        # No route out of the internal overlay: the registry on this machine's bridge address
        # answers the entry node, not the sandbox.
        target = f'("{swarm.registry.address}", {swarm.registry.port})'
        dial = f"python3 -c 'import socket; socket.create_connection({target}, 3); print(1)' 2>&1"
        dial += " | tail -1"
        reached = run_on(path, ["entry", "jail"], dial)
        assert reached["entry"].stdout == b"1\n", reached["entry"]
        assert reached["jail"].stdout.startswith(b"OSError"), reached["jail"]
        # Neither the config nor any token is in what `docker service inspect` shows.
        for node in state.nodes.values():
            shown = json.dumps(client().api.inspect_service(node.handle["service"]))
            assert token_digest(node.admin_token) not in shown
            assert node.admin_token not in shown
            spec = client().api.inspect_service(node.handle["service"])["Spec"]
            env = spec["TaskTemplate"]["ContainerSpec"]["Env"]
            assert {e.split("=")[0] for e in env} == {
                "CODEBOLT_TOPOLOGY",
                "CODEBOLT_NODE",
                "CODEBOLT_LINEAGE",
            }
        # A service removed out of band is drift that plan shows and apply repairs.
        client().api.remove_service(state.nodes["gpu"].handle["service"])
        (action,) = [a for a in plan_topology(path).actions if a.node == "gpu"]
        assert action.kind is ActionKind.REPLACE
        assert "removed out of band" in " ".join(action.messages)
        apply_topology(path)
        assert answers(path, ["gpu"])()
    _assert_workers_clean(swarm)


def _assert_workers_clean(swarm: SwarmCluster) -> None:
    """After destroy, no task container and no volume is left on any worker (Swarm removes a
    removed service's task containers, with their volumes, within moments)."""
    for worker in swarm.workers:
        wait_for(
            lambda w=worker: (
                w.docker("ps", "-aq").strip() == "" and w.docker("volume", "ls", "-q").strip() == ""
            ),
            60,
            f"{worker.name}: containers or volumes left",
        )


def _kill_daemon(swarm: SwarmCluster, service: str) -> None:
    """SIGKILL the node daemon inside ``service``'s task, on whichever machine runs it."""
    machine = machine_of(service)
    (task,) = running_tasks(service)
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    shell = (
        'for p in /proc/[0-9]*; do grep -q "swarm.task_mai[n]" $p/cmdline 2>/dev/null '
        "&& kill -9 ${p#/proc/}; done"
    )
    command = ["exec", "-u", "0", container, "sh", "-c", shell]
    if machine.startswith("codebolt-swarm-w"):
        # The daemon may be the task's main process: its container, and this exec with it, can end
        # before the loop does (a non-zero exit). The test checks the kill's effect itself.
        swarm.worker(machine).docker(*command, check=False)
    else:
        client().containers.get(container).exec_run(command[4:], user="0")


PAIR = f"""name: pair
{HEARTBEAT}
nodes:
  a: {{provider: swarm, image: IMAGE}}
  b: {{provider: swarm, image: IMAGE}}
edges: [a -> b]
"""


def test_killed_daemon_is_restarted_by_swarm_and_rewired(
    swarm: SwarmCluster, tmp_path: Path
) -> None:
    path = write(tmp_path, swarm, PAIR)
    with applied(path):
        before = state_of(path).nodes["b"]
        service = before.handle["service"]
        (first,) = running_tasks(service)
        _kill_daemon(swarm, service)
        wait_for(
            lambda: [t["ID"] for t in running_tasks(service)] not in ([], [first["ID"]]),
            60,
            "Swarm restarting the task",
        )
        seconds = heal(path, answers(path, ["b"]), timeout=60)
        print(f"\nkill -9 of b's daemon: work reaches b again {seconds:.1f} s after its restart")
        after = state_of(path).nodes["b"]
        assert after.handle == before.handle  # healed in place: not replaced
        assert after.generation > before.generation  # its wiring was pushed again
        assert len(running_tasks(service)) == 1  # no duplicate
        failed = [t for t in tasks_of(service) if t["Status"]["State"] == "failed"]
        assert len(failed) == 1, failed
        # Its log is the service's: both daemons' lines, wherever they ran.
        lines = asyncio.run(_log_lines(path, "b"))
        assert sum(" listening on " in line for line in lines) == 2, lines[-20:]


async def _log_lines(path: Path, node: str) -> list[str]:
    return [line.text async for line in node_log(path, node)]


FAN = f"""name: fan
{HEARTBEAT}
nodes:
  a: {{provider: swarm, image: IMAGE}}
  b: {{provider: swarm, image: IMAGE, count: 4}}
edges: [a -> b]
"""


def _busiest_worker(swarm: SwarmCluster, services: list[str]) -> Worker:
    hosts = [machine_of(s) for s in services]
    workers = [w for w in swarm.workers if w.name in hosts]
    assert workers, f"no task of {services} on a worker: {hosts}"
    return max(workers, key=lambda w: hosts.count(w.name))


def _moved_off(
    worker: Worker, services: list[str], path: Path, targets: list[str]
) -> Callable[[], bool]:
    """Healed: every service has one running task, none on ``worker``, and work reaches every
    target again."""

    def check() -> bool:
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in client().api.nodes()}
        tasks = [running_tasks(s) for s in services]
        if any(len(t) != 1 for t in tasks):
            return False
        hosts = {hostnames.get(t[0]["NodeID"]) for t in tasks}
        return worker.name not in hosts and answers(path, targets)()

    return check


def test_drained_and_killed_workers_tasks_are_rescheduled(
    swarm: SwarmCluster, tmp_path: Path
) -> None:
    path = write(tmp_path, swarm, FAN)
    targets = ["b-1", "b-2", "b-3", "b-4"]
    with applied(path):
        services = [node.handle["service"] for node in state_of(path).nodes.values()]
        drained = _busiest_worker(swarm, services)
        reports: list[str] = []
        watch = Reconciler(path, report=reports.append)
        heal(path, answers(path, targets), timeout=60, reconciler=watch)  # where each runs now
        swarm.set_availability(drained, "drain")
        try:
            healed = _moved_off(drained, services, path, targets)
            seconds = heal(path, healed, timeout=180, reconciler=watch)
            print(f"\ndrained {drained.name}: healed in {seconds:.1f} s")
        finally:
            swarm.set_availability(drained, "active")
        moves = [line for line in reports if f"moved by its engine from {drained.name}" in line]
        assert moves, reports  # the same nodes, moved by Swarm: not replaced
        killed = _busiest_worker(swarm, services)
        killed.container.kill()
        try:
            seconds = heal(path, _moved_off(killed, services, path, targets), timeout=240)
            print(f"killed {killed.name}: healed in {seconds:.1f} s")
        finally:
            killed.container.start()
            swarm.wait_ready(killed, timeout=120)
        assert {s.name for s in state_of(path).nodes.values()} == {"a", *targets}
    _assert_workers_clean(swarm)


def test_an_engine_outside_a_swarm_is_refused_with_the_command_to_run(
    swarm: SwarmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sockets = tmp_path / "engine"
    sockets.mkdir()
    engine = run_engine(
        worker_image(),
        ["-H", "unix:///var/run/outside/docker.sock", "--storage-driver", "vfs"],
        mounts=[docker.types.Mount("/var/run/outside", str(sockets), type="bind")],
    )
    try:
        wait_for(lambda: (sockets / "docker.sock").exists(), 60, "a standalone engine")
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sockets / 'docker.sock'}")
        path = write(
            tmp_path, swarm, "name: lonely\nnodes:\n  a: {provider: swarm, image: IMAGE}\n"
        )
        with pytest.raises(ApplyError) as raised:
            apply_topology(path)
        assert "not part of a swarm" in str(raised.value)
        assert "docker swarm init" in str(raised.value)
    finally:
        engine.remove(force=True, v=True)
