"""Topologies on real containers: seed shapes, a mixed local → docker → docker chain, faults."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docker_helpers import applied, client, containers_of, docker_example, state_of

from codebolt_topo.client import Exit, Failed, NodeClient, Output
from codebolt_topo.engine.operations import apply_topology, destroy_topology, plan_topology
from codebolt_topo.engine.runner import ApplyError
from codebolt_topo.errors import ExecError
from codebolt_topo.plan.diff import ActionKind
from codebolt_topo.plan.validate import validate_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _run(path: Path, target: str | list[str], shell: str, entry: str | None = None) -> object:
    state = state_of(path)
    node = state.nodes[entry or validate_file(path).graph.entries()[0]]
    assert node.url is not None

    async def go() -> object:
        async with NodeClient.connect(node.url, node.admin_token) as c:  # type: ignore[arg-type]
            return await (await c.exec(target, shell=shell, timeout=30)).result()

    return asyncio.run(go())


@pytest.mark.parametrize("shape", ["linear", "fan-out", "tree", "mesh", "hub"])
def test_seed_shape_on_docker(shape: str, tmp_path: Path) -> None:
    path = docker_example(shape, tmp_path)
    with applied(path):
        graph = validate_file(path).graph
        farthest = graph.farthest_from(graph.entries()[0])
        assert farthest is not None
        result = _run(path, farthest, 'echo "$CODEBOLT_NODE $(id -u)"; exit 3')
        assert result[farthest].stdout == f"{farthest} 10001\n".encode()  # type: ignore[index]
        assert result[farthest].exit.code == 3  # type: ignore[index]
        if shape == "fan-out":
            # Every leaf is still running when the last one starts: they ran at once (judged
            # by the containers' shared clock, not by how long the test took).
            leaves = ["b", "c", "d"]
            result = _run(path, leaves, "date +%s.%N; sleep 1; date +%s.%N")
            spans = {n: [float(t) for t in result[n].stdout.split()] for n in leaves}  # type: ignore[index]
            assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
        assert plan_topology(path).has_changes is False
        assert len(containers_of(shape)) == len(validate_file(path).topology.nodes)


MIXED = """name: mixed
nodes:
  a: {}
  b: {provider: docker, resources: {cpus: 1, memory: 256m, pids: 200}, env: {GREETING: hi}}
  c: {provider: docker}
  d: {host: 0.0.0.0}       # local, reached by container c through the host gateway
edges: [a -> b -> c -> d]
"""


def test_mixed_chain_streams_and_reports_a_killed_hop(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    with applied(path):
        state = state_of(path)
        entry = state.nodes["a"]
        assert entry.url is not None
        assert state.nodes["b"].handle["detected"]["python"].startswith("3.11")
        assert "python:3.11" in state.nodes["b"].detected  # reported by the daemon itself
        # local -> container -> container -> local
        back_home = _run(path, "d", "echo $CODEBOLT_NODE on the host")
        assert back_home["d"].stdout == b"d on the host\n"  # type: ignore[index]
        b_attrs = client().api.inspect_container(state.nodes["b"].handle["id"])
        assert b_attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert b_attrs["HostConfig"]["PidsLimit"] == 200
        assert all(
            binding["HostIp"] == "127.0.0.1"
            for binding in b_attrs["NetworkSettings"]["Ports"]["3100/tcp"]
        )

        async def stream() -> list[float]:
            async with NodeClient.connect(entry.url, entry.admin_token) as c:  # type: ignore[arg-type]
                handle = await c.exec("c", shell="for i in 1 2 3; do echo tick $i; sleep 0.4; done")
                arrivals = []
                async for event in handle:
                    if isinstance(event, Output):
                        arrivals.append(time.monotonic())
                return arrivals

        arrivals = asyncio.run(stream())
        assert len(arrivals) >= 3
        assert arrivals[-1] - arrivals[0] > 0.6, "output was buffered, not streamed"

        async def kill_mid_stream() -> list[Failed | Exit]:
            async with NodeClient.connect(entry.url, entry.admin_token) as c:  # type: ignore[arg-type]
                handle = await c.exec("c", shell="while true; do echo tick; sleep 0.1; done")
                ends: list[Failed | Exit] = []
                killed = False
                try:
                    async for event in handle:
                        if isinstance(event, Output) and not killed:
                            killed = True
                            await asyncio.to_thread(
                                client().containers.get(state.nodes["b"].handle["id"]).kill
                            )
                        elif isinstance(event, Failed | Exit):
                            ends.append(event)
                except ExecError as error:
                    ends.append(
                        Failed(
                            node=error.node,
                            hop=error.hop,
                            code=error.code or "",
                            message=str(error),
                        )
                    )
                return ends

        ends = asyncio.run(asyncio.wait_for(kill_mid_stream(), 30))
        failures = [e for e in ends if isinstance(e, Failed)]
        assert failures, f"no failure reported after killing b: {ends}"
        assert "next hop 'b'" in failures[0].message, failures[0]

        plan = plan_topology(path)
        replaced = plan.of_kind(ActionKind.REPLACE)
        assert [a.node for a in replaced] == ["b"]
        assert "137" in str(replaced[0]) or "exited" in str(replaced[0])
        apply_topology(path)
        result = _run(path, "c", "echo $CODEBOLT_NODE back")
        assert result["c"].stdout == b"c back\n"  # type: ignore[index]
        assert len(containers_of("mixed")) == 2


PARTITION = """name: cut
heartbeat: {interval: 500ms, timeout: 1s}
nodes:
  a: {}
  b: {provider: docker}
  c: {provider: docker}
edges: [a -> b -> c]
"""


def test_network_disconnect_then_reconnect_mid_stream(tmp_path: Path) -> None:
    """c is cut off its network while streaming, then put back: the job on c keeps running,
    and its output reaches the caller whole, in order, once, or the break is reported."""
    path = tmp_path / "cut.yaml"
    path.write_text(PARTITION)
    with applied(path):
        state = state_of(path)
        entry, c_id = state.nodes["a"], state.nodes["c"].handle["id"]
        network = client().networks.get(f"codebolt-cut-{state.lineage[:8]}")

        async def stream() -> tuple[bytes, list[object]]:
            async with NodeClient.connect(entry.url, entry.admin_token) as c:  # type: ignore[arg-type]
                count = "for i in $(seq 1 40); do echo $i; sleep 0.1; done"
                handle = await c.exec("c", shell=count)
                data, ends, cut = b"", [], False
                try:
                    async for event in handle:
                        if isinstance(event, Output):
                            data += event.data
                            if not cut:
                                cut = True
                                await asyncio.to_thread(network.disconnect, c_id)
                                await asyncio.sleep(3)  # past the 1.5 s keepalive deadline
                                await asyncio.to_thread(network.connect, c_id, aliases=["c"])
                        elif isinstance(event, Failed | Exit):
                            ends.append(event)
                except ExecError as error:
                    ends.append(error)
                return data, ends

        data, ends = asyncio.run(asyncio.wait_for(stream(), 60))
        lines = data.decode().split()
        assert lines == [str(i) for i in range(1, len(lines) + 1)], "a gap or a duplicate"
        if len(lines) == 40:
            assert [type(e) for e in ends] == [Exit], ends
            assert ends[0].code == 0  # type: ignore[attr-defined]
        else:
            assert ends, "the break was not reported"
            assert not any(isinstance(e, Exit) for e in ends), ends
            print(f"reported after {len(lines)} lines: {ends}")
        # The topology is whole again either way.
        assert _run(path, "c", "echo $CODEBOLT_NODE reconnected")["c"].stdout == (  # type: ignore[index]
            b"c reconnected\n"
        )


def test_orchestrator_killed_mid_apply_leaves_no_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "crash.yaml"
    path.write_text(
        "name: dcrash\nnodes:\n  a: {provider: docker}\n  b: {provider: docker}\nedges: [a -> b]\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", "apply", "--auto-approve", str(path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        # Killed once both containers exist, before the apply recorded them (a request still in
        # flight when the client dies would be completed by the engine after the re-apply began).
        while len(containers_of("dcrash")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert containers_of("dcrash"), "apply was killed before it started any container"
        with applied(path):
            names = sorted(c.name for c in containers_of("dcrash"))
            assert len(names) == 2, f"duplicates after re-apply: {names}"
            assert _run(path, "b", "echo ok")["b"].stdout == b"ok\n"  # type: ignore[index]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        destroy_topology(path)


def test_gpus_on_an_engine_without_a_gpu_runtime_fail_clearly(tmp_path: Path) -> None:
    if "nvidia" in client().info().get("Runtimes", {}):
        pytest.skip("this engine has the NVIDIA runtime: the refusal cannot be shown here")
    path = tmp_path / "gpu.yaml"
    path.write_text(
        "name: gpu\nnodes:\n  a: {}\n  t: {provider: docker, gpus: all}\nedges: [a -> t]\n"
    )
    try:
        with pytest.raises(ApplyError) as caught:
            apply_topology(path)
        message = str(caught.value)
        assert "node 't' asks for gpus: all, but this Docker Engine has no GPU runtime" in message
        assert "NVIDIA Container Toolkit" in message
        assert containers_of("gpu") == [], "nothing was started for the refused node"
    finally:
        destroy_topology(path)


def test_docker_and_hybrid_nodes_report_their_steps_and_show_their_logs(tmp_path: Path) -> None:
    """Issue 17, items 1-2: apply says what a docker node is doing (the image, the container,
    the daemon); ``codebolt logs`` reads a container's log through the SDK, for a docker node
    and for a hybrid node placed on docker, and follows it as the daemon writes."""
    from log_follow import Follower, logs

    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: dlogs\nnodes:\n  a: {}\n  b: {provider: docker}\n"
        "  h: {provider: hybrid, placement: [docker]}\nedges: [a -> b, a -> h]\n"
    )
    messages: list[str] = []
    apply_topology(path, progress=messages.append)
    try:
        assert [m[3:] for m in messages if m.startswith("b: ")][:4] == [
            "starting (docker)",
            "checking the image",
            "creating the container",
            "waiting for the daemon",
        ]
        for node in ("b", "h"):
            everything = logs(node, cwd=tmp_path)
            assert everything.returncode == 0, everything.stderr
            assert f"node {node} of dlogs listening on 0.0.0.0:3100" in everything.stdout
            assert (
                logs(node, "-n", "1", cwd=tmp_path).stdout.splitlines()
                == (everything.stdout.splitlines()[-1:])
            )

        h = state_of(path).nodes["h"]
        assert h.handle["placed_on"] == "docker"
        follower = Follower("h", cwd=tmp_path)
        try:
            follower.wait_for(lambda line: "listening on" in line)

            async def stale_configure() -> None:  # the daemon logs that it ignored it
                async with NodeClient.connect(str(h.url), h.admin_token) as admin:
                    await admin.configure({"generation": 0})

            asyncio.run(stale_configure())
            follower.wait_for(lambda line: "configure generation 0 ignored" in line)
        finally:
            code, stderr = follower.stop()
        assert code == 0, stderr
    finally:
        destroy_topology(path)


def test_a_node_here_dials_the_container_that_sends_it_work(tmp_path: Path) -> None:
    """Issue 14: home listens on this machine's loopback, out of the container's reach; with
    dial: receiver home dials the container's published port and runs the container's work."""
    path = tmp_path / "dialhome.yaml"
    path.write_text(
        "name: dialhome\nnodes:\n  box: {provider: docker}\n  home: {}\n"
        "edges: [{from: box, to: home, dial: receiver}]\n"
    )
    with applied(path):
        result = _run(path, "home", "echo $CODEBOLT_NODE", entry="box")
        assert result["home"].stdout == b"home\n"  # type: ignore[index]
        assert result["home"].exit.code == 0  # type: ignore[index]


def test_a_daemon_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    """Readiness follows the container's log: when the log ends before the daemon listens (its
    container exited), the error says how it exited and shows the log's tail."""
    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: stillborn\nnodes:\n  w: {provider: docker, env: {PYTHONHOME: /nowhere}}\n"
    )
    try:
        with pytest.raises(ApplyError) as failed:
            apply_topology(path)
        message = str(failed.value)
        assert "node 'w': daemon did not start: container exited with code 1" in message
        assert "No module named 'encodings'" in message
    finally:
        destroy_topology(path)
    assert containers_of("stillborn") == []
