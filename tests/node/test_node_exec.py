"""Execution through real daemons: direct, through hops, fan-out, cancel, timeout, stdin."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import time

import pytest

from codebolt_topo.client import Exit, Failed, Notification, Output, SnapshotRequest, Started
from codebolt_topo.testing import Cluster, process_running


def test_direct_exec_streams_stdout_stderr_and_exit(chain: Cluster) -> None:
    async def main() -> list[object]:
        async with chain.client("a") as client:
            handle = await client.exec("a", shell="printf out; printf err >&2; exit 7")
            return [event async for event in handle]

    events = asyncio.run(main())
    started = events[0]
    assert isinstance(started, Started)
    assert started.node == "a"
    assert started.path == ["a"]
    outputs = {(e.stream, e.data) for e in events if isinstance(e, Output)}
    assert outputs == {("stdout", b"out"), ("stderr", b"err")}
    assert isinstance(events[-1], Exit)
    assert events[-1].code == 7
    assert events[-1].signal is None


def test_requests_on_one_connection_get_ids_that_differ_from_the_first_character(
    chain: Cluster,
) -> None:
    """Every exec through the broker shares one connection: ids made of a per-connection prefix
    and a counter made ``jobs attach`` abbreviations of two jobs ambiguous (seen in CI)."""

    async def main() -> list[str]:
        async with chain.client("a") as client:
            handles = [await client.exec("a", argv=["true"]) for _ in range(20)]
            for handle in handles:
                await handle.result()
            return [handle.id for handle in handles]

    ids = asyncio.run(main())
    assert len({request_id[:6] for request_id in ids}) == len(ids)


def test_env_cwd_and_node_variables(chain: Cluster) -> None:
    async def main() -> bytes:
        async with chain.client("a") as client:
            handle = await client.exec(
                "c", shell='echo "$X $CODEBOLT_NODE $(basename $PWD)"', env={"X": "42"}
            )
            return (await handle.result())["c"].stdout

    assert asyncio.run(main()) == b"42 c ws\n"


def test_command_not_found_names_the_node(chain: Cluster) -> None:
    async def main() -> list[object]:
        async with chain.client("a") as client:
            return [e async for e in await client.exec("c", argv=["no-such-command-xyz"])]

    events = asyncio.run(main())
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, Failed)
    assert (failed.node, failed.hop, failed.code) == ("c", "c", "not-found")
    assert "'c'" in failed.message
    assert "no-such-command-xyz" in failed.message


def test_bad_cwd_is_spawn_failed(chain: Cluster) -> None:
    async def main() -> Failed:
        async with chain.client("a") as client:
            result = await (await client.exec("b", argv=["true"], cwd="missing")).result()
            return result.failures[0]

    assert asyncio.run(main()).code == "spawn-failed"


def test_three_hops_output_is_byte_identical(chain: Cluster) -> None:
    size = 5 * 1024 * 1024
    script = f"head -c {size} /dev/urandom | tee /dev/stderr | sha256sum >&2"

    async def main() -> tuple[bytes, bytes, Exit | None, list[str]]:
        async with chain.client("a") as client:
            handle = await client.exec("d", shell=script)
            path: list[str] = []
            chunks: list[bytes] = []
            err: list[bytes] = []
            final = None
            async for event in handle:
                if isinstance(event, Started):
                    path = event.path
                elif isinstance(event, Output):
                    (chunks if event.stream == "stdout" else err).append(event.data)
                elif isinstance(event, Exit):
                    final = event
            return b"".join(chunks), b"".join(err), final, path

    stdout, stderr, final, path = asyncio.run(main())
    assert path == ["a", "b", "c", "d"]
    assert final is not None
    assert final.code == 0
    assert stdout == b""
    data, digest = stderr[:size], stderr[size:].split()[0].decode()
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == digest


def test_fan_out_to_a_list_of_targets(chain: Cluster) -> None:
    async def main() -> dict[str, bytes]:
        async with chain.client("a") as client:
            result = await (
                await client.exec(["d", "a", "b", "c"], shell="echo $CODEBOLT_NODE")
            ).result()
            result.raise_for_failures()
            return {node: r.stdout for node, r in result.nodes.items()}

    assert asyncio.run(main()) == {n: f"{n}\n".encode() for n in "abcd"}


def test_many_concurrent_requests_on_one_connection(chain: Cluster) -> None:
    async def main() -> list[bytes]:
        async with chain.client("a") as client:
            handles = [await client.exec("bcd"[i % 3], argv=["echo", str(i)]) for i in range(30)]
            results = await asyncio.gather(*(h.result() for h in handles))
            return [r.nodes["bcd"[i % 3]].stdout for i, r in enumerate(results)]

    assert asyncio.run(main()) == [f"{i}\n".encode() for i in range(30)]


def test_cancel_kills_process_group_through_hops(chain: Cluster) -> None:
    async def main() -> tuple[list[int], Exit]:
        async with chain.client("a") as client:
            handle = await client.exec("c", shell="sleep 60 & echo $!; wait")
            events = aiter(handle)
            assert isinstance(await anext(events), Started)
            output = await anext(events)
            assert isinstance(output, Output)
            child = int(output.data)
            assert process_running(child)
            await handle.cancel()
            rest = [e async for e in events]
            final = rest[-1]
            assert isinstance(final, Exit)
            return [child], final

    children, final = asyncio.run(main())
    assert final.cancelled
    assert final.signal == "SIGTERM"
    deadline = time.monotonic() + 3
    while any(process_running(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(process_running(c) for c in children)


def test_timeout_terminates_job(chain: Cluster) -> None:
    async def main() -> Exit:
        async with chain.client("a") as client:
            result = await (await client.exec("b", argv=["sleep", "30"], timeout=0.3)).result()
            exit_ = result["b"].exit
            assert exit_ is not None
            return exit_

    started = time.monotonic()
    final = asyncio.run(main())
    assert final.timed_out
    assert not final.cancelled
    assert final.code is None
    assert time.monotonic() - started < 5


def test_signal_reaches_the_job(chain: Cluster) -> None:
    async def main() -> Exit:
        async with chain.client("a") as client:
            handle = await client.exec(
                "c", shell="trap 'exit 42' INT; echo ready; while :; do sleep 0.05; done"
            )
            async for event in handle:
                if isinstance(event, Output):
                    await handle.signal("c", "SIGINT")
                if isinstance(event, Exit):
                    return event
            raise AssertionError("no exit")

    assert asyncio.run(main()).code == 42


def test_notify_fd_progress_arrives_upstream(chain: Cluster) -> None:
    code = (
        "import os,json;f=os.fdopen(int(os.environ['CODEBOLT_NOTIFY_FD']),'w');"
        "[print(json.dumps({'kind':'progress','data':{'pct':p}}),file=f,flush=True) "
        "for p in (10,50,100)];print('not json',file=f)"
    )

    async def main() -> list[Notification]:
        async with chain.client("a") as client:
            handle = await client.exec("d", argv=[sys.executable, "-c", code])
            return [e async for e in handle if isinstance(e, Notification)]

    notes = asyncio.run(main())
    assert [(n.node, n.kind, n.data) for n in notes] == [
        ("d", "progress", {"pct": 10}),
        ("d", "progress", {"pct": 50}),
        ("d", "progress", {"pct": 100}),
    ]


def test_stdin_round_trip_through_hops(chain: Cluster) -> None:
    data = os.urandom(300_000)

    async def main() -> bytes:
        async with chain.client("a") as client:
            result = await (await client.exec("c", argv=["cat"], stdin=data)).result()
            return result["c"].stdout

    assert asyncio.run(main()) == data


def test_unknown_target_is_unreachable_naming_the_hop(chain: Cluster) -> None:
    async def main() -> Failed:
        async with chain.client("a") as client:
            return (await (await client.exec("zz", argv=["true"])).result()).failures[0]

    failed = asyncio.run(main())
    assert (failed.node, failed.hop, failed.code) == ("zz", "a", "unreachable")


@pytest.mark.slow
def test_dead_next_hop_is_unreachable_and_lost_link_is_peer_lost(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster([("a", "b"), ("b", "c")])

    job_pids: list[int] = []

    async def long_job() -> Failed:
        async with cluster.client("a", resume=False) as client:
            handle = await client.exec("c", shell="echo go; sleep 30")
            async for event in handle:
                if isinstance(event, Started) and event.pid is not None:
                    job_pids.append(event.pid)
                if isinstance(event, Output):
                    cluster.procs["c"].kill()
                if isinstance(event, Failed):
                    return event
            raise AssertionError("no failure")

    try:
        lost = asyncio.run(long_job())
    finally:  # a SIGKILLed daemon cannot clean up: its job's group is ours to kill
        for pid in job_pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert (lost.node, lost.hop, lost.code) == ("c", "b", "peer-lost")

    async def after() -> Failed:
        async with cluster.client("a") as client:
            return (await (await client.exec("c", argv=["true"])).result()).failures[0]

    failed = asyncio.run(after())
    assert (failed.node, failed.hop, failed.code) == ("c", "b", "unreachable")
    assert "'c'" in failed.message


@pytest.mark.slow
def test_mesh_cycle_terminates(make_cluster) -> None:  # type: ignore[no-untyped-def]
    # A bad route table sends "x" round the cycle a -> b -> c -> a forever, were it not for path.
    cluster = make_cluster(
        [("a", "b"), ("b", "c"), ("c", "a")],
        a={"routes": {"x": ["b"], "c": ["b"]}},
        b={"routes": {"x": ["c"]}},
        c={"routes": {"x": ["a"]}},
    )

    async def main() -> tuple[Failed, dict[str, bytes]]:
        async with cluster.client("a") as client:
            loop_failure = (await (await client.exec("x", argv=["true"])).result()).failures[0]
            ok = await (await client.exec(["a", "b", "c"], argv=["true"])).result()
            ok.raise_for_failures()
            return loop_failure, {n: r.stdout for n, r in ok.nodes.items()}

    failed, ok = asyncio.run(main())
    assert (failed.node, failed.code, failed.hop) == ("x", "loop", "a")
    assert set(ok) == {"a", "b", "c"}


@pytest.mark.slow
def test_hop_limit(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster([("a", "b"), ("b", "c")], a={"hop_limit": 1})

    async def main() -> Failed:
        async with cluster.client("a") as client:
            return (await (await client.exec("c", argv=["true"])).result()).failures[0]

    failed = asyncio.run(main())
    assert (failed.node, failed.code, failed.hop) == ("c", "hop-limit", "b")


def test_a_job_being_started_for_its_caller_is_listed_running_not_detached(  # type: ignore[no-untyped-def]
    make_cluster,
) -> None:
    """Between a job's admission and its caller's attach lies its start: here a snapshot of a
    workspace of 3,000 files. ``jobs`` listed it ``detached`` in that window (seen in CI, where
    a loaded box widened it), as if its caller had gone."""
    cluster = make_cluster([("a", "b")])
    workspace = cluster.root / "a" / "ws"
    for i in range(3000):
        (workspace / f"f{i:04d}.txt").write_bytes(os.urandom(2048))

    async def main() -> tuple[list[str], int | None]:
        async with cluster.client("a") as caller, cluster.client("a") as operator:
            handle = await caller.exec(
                "a",
                argv=["true"],
                snapshot=SnapshotRequest(objective="o", thread="t", run="r", when="before"),
            )
            seen: list[str] = []
            pending = asyncio.ensure_future(handle.result())
            while not pending.done():
                info = await operator.info(detail=True)
                seen += [job["state"] for job in info["job_list"] if job["id"] == handle.id]
                await asyncio.sleep(0.005)
            result = await pending
            exit_ = result.nodes["a"].exit
            return seen, exit_.code if isinstance(exit_, Exit) else None

    seen, code = asyncio.run(main())
    assert code == 0
    assert seen, "the job was never listed while it ran"
    assert set(seen) <= {"running", "finished"}, seen
