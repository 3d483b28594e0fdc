"""Nothing lost: resume after dropped connections and killed hops, attach, idempotent ids,
retention, keepalive, and per-job backpressure, on real daemons."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from codebolt_topo.client import ExecHandle, Exit, Failed, Output, Started
from codebolt_topo.testing import Cluster


def seq_bytes(n: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(1, n + 1))


async def collect(
    handle: ExecHandle, node: str, after_first: object = None
) -> tuple[bytes, list[object]]:
    """stdout of ``node`` and every non-output event; ``after_first`` runs once, after the
    first output chunk (the moment tests break things)."""
    chunks: list[bytes] = []
    events: list[object] = []
    async for event in handle:
        if isinstance(event, Output):
            assert event.node == node
            chunks.append(event.data)
            if after_first is not None:
                hook, after_first = after_first, None
                result = hook()  # type: ignore[operator]
                if asyncio.iscoroutine(result):
                    await result
        else:
            events.append(event)
    return b"".join(chunks), events


def exits(events: list[object]) -> list[Exit]:
    return [e for e in events if isinstance(e, Exit)]


def test_client_connection_drop_resumes_byte_identical(chain: Cluster) -> None:
    expected = seq_bytes(300_000)

    async def main() -> tuple[bytes, list[object]]:
        async with chain.client("a") as client:
            handle = await client.exec("d", argv=["seq", "1", "300000"])
            return await collect(handle, "d", lambda: client._link.ws.transport.abort())

    stdout, events = asyncio.run(main())
    assert stdout == expected
    assert [e.code for e in exits(events)] == [0]
    assert sum(isinstance(e, Started) for e in events) == 1
    assert not [e for e in events if isinstance(e, Failed)]


@pytest.mark.slow
def test_killed_middle_hop_restarts_and_stream_resumes(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster([("a", "b"), ("b", "c")], c={"window": 256 * 1024})
    expected = seq_bytes(400_000)

    async def break_b() -> None:
        cluster.procs["b"].kill()
        cluster.procs["b"].wait()
        await asyncio.sleep(0.2)
        cluster.restart("b")
        await cluster.configure()

    async def main() -> tuple[bytes, list[object]]:
        async with cluster.client("a", retries=14) as client:
            handle = await client.exec("c", argv=["seq", "1", "400000"])
            return await collect(handle, "c", break_b)

    stdout, events = asyncio.run(main())
    assert len(stdout) == len(expected)
    assert stdout == expected
    assert [e.code for e in exits(events)] == [0]
    assert not [e for e in events if isinstance(e, Failed)]


def test_attach_from_a_new_client_continues_from_offsets(chain: Cluster) -> None:
    expected = seq_bytes(200_000)
    script = "seq 1 100000; sleep 0.3; seq 100001 200000"

    async def first() -> tuple[str, bytes, dict[str, int]]:
        async with chain.client("a") as client:
            handle = await client.exec("c", shell=script)
            async for event in handle:
                if isinstance(event, Output):  # this process stops after one chunk
                    offsets = {"stdout": event.offset + len(event.data), "stderr": 0}
                    return handle.id, event.data, offsets
            raise AssertionError("no output")

    async def second(request_id: str, offsets: dict[str, int]) -> tuple[bytes, list[object]]:
        async with chain.client("b") as client:  # another entry node, another process's view
            return await collect(await client.attach(request_id, "c", offsets), "c")

    request_id, head, offsets = asyncio.run(first())
    assert offsets["stdout"] == len(head)
    rest, events = asyncio.run(second(request_id, offsets))
    assert head + rest == expected
    assert [e.code for e in exits(events)] == [0]


def test_duplicate_id_runs_once_and_other_payload_conflicts(chain: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    script = f"echo run >> {marker}; echo hello"
    request_id = f"dup-{uuid.uuid4().hex}"

    async def run(shell: str) -> list[object]:
        async with chain.client("a") as client:
            return [e async for e in await client.exec("c", shell=shell, request_id=request_id)]

    async def both() -> tuple[list[object], list[object]]:
        return await asyncio.gather(run(script), run(script))

    first, second = asyncio.run(both())
    third = asyncio.run(run(script))
    for events in (first, second, third):
        assert [e.data for e in events if isinstance(e, Output)] == [b"hello\n"]
        assert [e.code for e in exits(events)] == [0]
    assert marker.read_text() == "run\n"
    conflict = asyncio.run(run("echo other"))
    assert [(e.node, e.hop, e.code) for e in conflict if isinstance(e, Failed)] == [
        ("c", "c", "conflict")
    ]
    assert marker.read_text() == "run\n"


@pytest.mark.slow
def test_retention_expiry_is_truncated_and_info_reports_jobs(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster([("a", "b")], b={"retention": 0.4, "detach_lease": 0.4})

    async def main() -> None:
        async with cluster.client("a") as client:
            handle = await client.exec("b", argv=["echo", "hi"])
            assert (await handle.result())["b"].stdout == b"hi\n"
            again = await (await client.attach(handle.id, "b")).result()
            assert again["b"].stdout == b"hi\n"  # still held: replayed from 0
            sleeper = await client.exec("b", argv=["sleep", "30"])
            assert isinstance(await anext(aiter(sleeper)), Started)
        async with cluster.client("b") as admin:
            # The node learns of the closed connection asynchronously: poll, do not race it.
            for _ in range(100):
                info = await admin.info(detail=True)
                states = {job["id"]: job["state"] for job in info["job_list"]}
                if states.get(sleeper.id) == "detached":
                    break
                await asyncio.sleep(0.1)
            assert states[sleeper.id] == "detached"
            assert info["job_states"]["detached"] == 1
            # Past the lease (killed) and then the retention; poll so a loaded machine is fine.
            for _ in range(100):
                await asyncio.sleep(0.1)
                info = await admin.info(detail=True)
                if not info["job_list"]:
                    break
            assert info["job_list"] == []
            assert info["jobs"] == 0
        async with cluster.client("a") as client:
            failed = await (await client.attach(handle.id, "b", {"stdout": 3})).result()
            (failure,) = failed.failures
            assert (failure.node, failure.hop, failure.code) == ("b", "b", "truncated")
            assert "'b'" in failure.message
            assert "(3, 0)" in failure.message

    asyncio.run(main())


@pytest.mark.slow
def test_keepalive_reports_a_frozen_hop_and_the_job_survives(make_cluster) -> None:  # type: ignore[no-untyped-def]
    fast = {"keepalive_interval": 0.2, "keepalive_timeout": 0.5}
    cluster: Cluster = make_cluster([("a", "b"), ("b", "c")], a=fast, b=fast, c=fast)
    script = "for i in $(seq 1 30); do echo $i; sleep 0.05; done"

    async def main() -> tuple[bytes, float]:
        async with cluster.client("a", resume=False) as client:
            handle = await client.exec("c", shell=script)
            head = b""
            async for event in handle:
                if isinstance(event, Output):
                    head += event.data
                    os.kill(cluster.pids["b"], signal.SIGSTOP)
                    stopped = time.monotonic()
                if isinstance(event, Failed):
                    assert (event.node, event.hop, event.code) == ("c", "a", "peer-lost")
                    assert "'b'" in event.message
                    break
            detected = time.monotonic() - stopped
        os.kill(cluster.pids["b"], signal.SIGCONT)
        async with cluster.client("a") as client:
            rest, events = await collect(
                await client.attach(handle.id, "c", {"stdout": len(head)}), "c"
            )
        assert [e.code for e in exits(events)] == [0]
        return head + rest, detected

    try:
        stdout, detected = asyncio.run(main())
    finally:
        os.kill(cluster.pids["b"], signal.SIGCONT)
    assert stdout == seq_bytes(30)
    assert detected < 3


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_slow_reader_pauses_the_child_without_stalling_other_jobs(make_cluster) -> None:  # type: ignore[no-untyped-def]
    window = 1024 * 1024
    total = 208 * 1024 * 1024
    cluster: Cluster = make_cluster([("a", "b")], b={"window": window})
    pid = cluster.pids["b"]
    baseline = rss_kib(pid)
    peak = [baseline]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_kib(pid))
            await asyncio.sleep(0.05)

    async def main() -> None:
        sampler = asyncio.ensure_future(sample())
        async with cluster.client("a") as client, cluster.client("b") as admin:
            slow = await client.exec("b", shell=f"head -c {total} /dev/zero")
            events = aiter(slow)
            assert isinstance(await anext(events), Started)
            received = 0
            for _ in range(3):  # a reader that barely reads
                event = await anext(events)
                assert isinstance(event, Output)
                received += len(event.data)
                await asyncio.sleep(0.3)
            (job,) = (j for j in (await admin.info(detail=True))["job_list"] if j["id"] == slow.id)
            assert job["paused"]
            assert job["stdout"] <= received + 2 * window
            started = time.monotonic()
            quick = await (await client.exec("b", argv=["seq", "1", "200000"])).result()
            assert quick["b"].stdout == seq_bytes(200_000)
            assert time.monotonic() - started < 3
            async for event in events:  # now read it all, fast
                if isinstance(event, Output):
                    received += len(event.data)
            assert received == total
        sampler.cancel()

    asyncio.run(main())
    assert peak[0] - baseline < 48 * 1024, f"RSS grew {peak[0] - baseline} KiB"


def test_forwarding_hops_memory_stays_bounded_while_streaming(make_cluster) -> None:  # type: ignore[no-untyped-def]
    total = 128 * 1024 * 1024
    cluster: Cluster = make_cluster([("a", "b"), ("b", "c")])
    pids = {node: cluster.pids[node] for node in ("a", "b")}  # a and b only relay c's output
    baseline = {node: rss_kib(pid) for node, pid in pids.items()}
    peak = dict(baseline)

    async def sample() -> None:
        while True:
            for node, pid in pids.items():
                peak[node] = max(peak[node], rss_kib(pid))
            await asyncio.sleep(0.02)

    async def main() -> int:
        sampler = asyncio.ensure_future(sample())
        received = 0
        async with cluster.client("a") as client:
            handle = await client.exec("c", shell=f"head -c {total} /dev/zero")
            async for event in handle:
                if isinstance(event, Output):
                    received += len(event.data)
                    if received < 8 * 1024 * 1024:
                        await asyncio.sleep(0.05)  # a slow start: the window fills up the path
        sampler.cancel()
        return received

    assert asyncio.run(main()) == total
    for node in pids:
        grew = peak[node] - baseline[node]
        assert grew < 48 * 1024, f"{node} grew {grew} KiB"
