"""Issue 12, finding 2 and the daemon limits: a malformed request is refused before it takes
anything, a job that cannot start gives back what it opened, and every limit refuses with
``over-limit`` naming the node, the limit and its value, then lets work through again once
what it counted has ended (real daemons for the wiring, pure functions for the arithmetic)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import resource
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.client import ExecHandle, ExecResult, Failed, NodeClient, Started
from codebolt_topo.errors import ExecError, ProtocolError
from codebolt_topo.node.jobs.executor import LocalJob
from codebolt_topo.node.jobs.held import HeldJob
from codebolt_topo.node.jobs.table import JobTable
from codebolt_topo.node.logs import RepeatLimiter
from codebolt_topo.node.security.limits import (
    RECOUNT_EVERY,
    Charge,
    DescriptorGauge,
    Usage,
    job_over_limit,
    open_descriptors,
    pipes_of,
    request_over_limit,
)
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.codec import decode, request_id_of
from codebolt_topo.wire.config import Limits, RuntimeConfig

# Decoding: what would fail only in Popen or in the event loop is refused up front ----------


def exec_frame(**fields: Any) -> str:
    message = {"t": "exec", "id": "r1", "target": "b", "argv": ["true"], **fields}
    return json.dumps({k: v for k, v in message.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"argv": ["echo", "a\0b"]}, "command must not contain NUL"),
        ({"argv": None, "shell": "echo \0"}, "command must not contain NUL"),
        ({"env": {"A": "1\0"}}, "'env' values must not contain NUL"),
        ({"env": {"A\0": "1"}}, "'env' names"),
        ({"env": {"A=B": "1"}}, "'env' names"),
        ({"env": {"": "1"}}, "'env' names"),
        ({"cwd": "a\0"}, "'cwd' must not contain NUL"),
        ({"timeout": -1}, "'timeout' must be a finite number"),
        ({"timeout": 1e999}, "'timeout' must be a finite number"),
        ({"issued": {"epoch": 1, "at": 0}}, "'issued' must carry the node's clock 'epoch'"),
        ({"issued": {"epoch": "e", "at": "0"}}, "'issued' must carry 'at'"),
        ({"issued": {"epoch": "e", "at": True}}, "'issued' must carry 'at'"),
        ({"id": "x" * 513}, "'id' is longer than 512"),
        ({"origin": "x" * 513}, "'origin' is longer than 512"),
        (
            {"snapshot": {"when": "after", "objective": "o\0", "thread": "t", "run": "r"}},
            "snapshot fields must not contain NUL",
        ),
    ],
)
def test_decode_refuses_what_cannot_reach_a_process(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode(exec_frame(**fields))


def test_decode_refuses_a_nan_timeout() -> None:
    with pytest.raises(ProtocolError, match="'timeout' must be a finite number"):
        decode(exec_frame()[:-1] + ', "timeout": NaN}')


def test_decode_accepts_what_runs() -> None:
    message = decode(
        exec_frame(env={"A": "x=y"}, timeout=0, issued={"epoch": "e", "at": 0}, id="x" * 512)
    )
    assert message["env"] == {"A": "x=y"}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"t": "x" * 1_000_000}),
        exec_frame(resume={"n" * 1_000_000: {"stdout": -1}}),
    ],
)
def test_a_refusal_quotes_at_most_a_little_of_what_was_sent(text: str) -> None:
    """A 4 MiB frame gets a short error back (and a short line in node.log)."""
    with pytest.raises(ProtocolError) as refused:
        decode(text)
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(
    ("text", "rid"),
    [
        ('{"t": "exec", "id": "r1", "argv": 1}', "r1"),
        ('{"t": "attach", "id": "r2"}', "r2"),
        ('{"t": "exec", "id": "' + "x" * 513 + '"}', None),
        ('{"t": "exec", "id": 3}', None),
        ('{"t": "cancel", "id": "r3"}', None),
        ("{not json", None),
        ("[1]", None),
    ],
)
def test_a_refused_request_is_answered_with_its_id_when_it_can_be_read(
    text: str, rid: str | None
) -> None:
    assert request_id_of(text) == rid


# The executor: a spawn that fails closes what it opened -------------------------------------


def start_job(tmp_path: Path, request: dict[str, Any]) -> tuple[Exception, int, int]:
    """Start a LocalJob for ``request`` (as a JobTable would); the error and the descriptor
    counts before and after."""

    async def main() -> tuple[Exception, int, int]:
        request.setdefault("id", "r1")
        held = HeldJob(
            "r1",
            None,
            "n",
            1 << 20,
            lambda sink: LocalJob(
                node="n", request=request, base_env=os.environ, workspace=tmp_path, sink=sink
            ),
        )
        before = open_descriptors()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - each test checks which
            await held.local.start()
        return caught.value, before, open_descriptors()

    return asyncio.run(main())


@pytest.mark.parametrize(
    "request_fields",
    [
        {"argv": ["echo", "a\0b"]},
        {"argv": ["true"], "env": {"A": "\0"}},
        {"argv": ["true"], "env": {"A=B": "1"}},
        {"shell": "echo \0"},
    ],
)
def test_a_spawn_refused_by_popen_is_bad_request_and_leaks_nothing(
    tmp_path: Path, request_fields: dict[str, Any]
) -> None:
    error, before, after = start_job(tmp_path, dict(request_fields))
    assert isinstance(error, ExecError)
    assert (error.code, error.node) == ("bad-request", "n")
    assert str(error).startswith("node 'n': cannot run ")
    assert after == before


def test_a_missing_command_is_not_found_and_leaks_nothing(tmp_path: Path) -> None:
    error, before, after = start_job(tmp_path, {"argv": ["/no/such/command"]})
    assert isinstance(error, ExecError)
    assert error.code == "not-found"
    assert after == before


def test_the_job_table_answers_a_start_that_fails_unexpectedly(tmp_path: Path) -> None:
    """Whatever escapes the executor, the request is answered (``internal``) and the job
    leaves the table and the counts."""

    async def main() -> tuple[BaseException | None, Any, int]:
        table = JobTable("n", RuntimeConfig, lambda _: None, lambda _: None)
        connection = Usage()
        held = table.open(
            "r1",
            None,
            lambda sink: LocalJob(
                node="n", request={"id": "r1"}, base_env={}, workspace=tmp_path, sink=sink
            ),
            connection=connection,
        )
        assert (table.usage.jobs, connection.jobs) == (1, 1)
        try:
            await asyncio.wait_for(held.ready, 10)  # no answer at all would hang the request
        except ExecError as exc:
            error: BaseException | None = exc
        await asyncio.sleep(0)
        return error, table.get("r1"), table.usage.jobs + connection.jobs + connection.pipes

    error, still_held, counted = asyncio.run(main())
    assert isinstance(error, ExecError)
    assert error.code == "internal"
    assert still_held is None
    assert counted == 0


# The arithmetic of each limit ---------------------------------------------------------------


def usage(jobs: int, pipes: int) -> Usage:
    counted = Usage()
    counted.jobs, counted.pipes = jobs, pipes
    return counted


LIMITS = Limits(
    jobs=4, connection_jobs=2, pipes=12, connection_pipes=7, targets=3, connection_targets=5
)


@pytest.mark.parametrize(
    ("here", "connection", "pipes", "limit"),
    [
        (usage(4, 4), usage(0, 0), 3, "limits.jobs = 4"),
        (usage(1, 3), usage(2, 3), 3, "limits.connection_jobs = 2"),
        (usage(3, 10), usage(0, 0), 3, "limits.pipes = 12"),
        (usage(1, 4), usage(1, 4), 4, "limits.connection_pipes = 7"),
    ],
)
def test_each_job_limit_refuses_naming_itself(
    here: Usage, connection: Usage, pipes: int, limit: str
) -> None:
    refusal = job_over_limit("b", LIMITS, pipes, here, connection)
    assert refusal is not None
    assert refusal.startswith("node 'b': one more job would hold ")
    assert refusal.endswith(limit)


def test_job_limits_admit_up_to_their_value() -> None:
    assert job_over_limit("b", LIMITS, 3, usage(3, 6), usage(1, 3)) is None
    assert job_over_limit("b", LIMITS, 4, usage(0, 0), usage(0, 3)) is None


def test_request_limits_refuse_naming_themselves() -> None:
    assert request_over_limit("b", LIMITS, "r", 3, 2) is None
    assert request_over_limit("b", LIMITS, "r", 4, 0) == (
        "node 'b': request 'r' names 4 targets, over limits.targets = 3"
    )
    assert request_over_limit("b", LIMITS, "r", 2, 4) == (
        "node 'b': request 'r' would bring this connection to 6 open targets, over "
        "limits.connection_targets = 5"
    )


def test_a_charge_counts_in_every_scope_and_is_given_back_once() -> None:
    here, connection = Usage(), Usage()
    charge = Charge(pipes_of({"stdin": True}), here, connection)
    assert (here.jobs, here.pipes, connection.descriptors) == (1, 4, 5)
    charge.release()
    charge.release()
    assert (here.jobs, here.pipes, connection.jobs, connection.pipes) == (0, 0, 0, 0)


class Descriptors:
    """The process's descriptor count and limit, as the gauge reads them."""

    def __init__(self, open_now: int, limit: int) -> None:
        self.open_now, self.limit, self.counted = open_now, limit, 0

    def count(self) -> int:
        self.counted += 1
        return self.open_now


def test_the_descriptor_gauge_counts_exactly_only_near_the_limit() -> None:
    fd = Descriptors(open_now=100, limit=1000)
    gauge = DescriptorGauge(fd.count, lambda: fd.limit)
    assert gauge.refusal("b", 7, 128, held=0) is None
    assert fd.counted == 1  # the first check takes the base
    for held in range(0, 700, 5):
        assert gauge.refusal("b", 7, 128, held=held) is None
    assert fd.counted == 1  # far from the limit: estimated from what jobs hold
    fd.open_now = 950
    refusal = gauge.refusal("b", 7, 128, held=850)  # the estimate says no: count exactly
    assert fd.counted == 2
    assert refusal == (
        "node 'b': 950 descriptors open and a job needs 7 more, past RLIMIT_NOFILE = 1000 "
        "less limits.descriptor_reserve = 128"
    )


def test_the_descriptor_gauge_recounts_now_and_then() -> None:
    """Descriptors the gauge does not track (sockets, files) are found by the periodic count."""
    fd = Descriptors(open_now=100, limit=1000)
    gauge = DescriptorGauge(fd.count, lambda: fd.limit)
    assert gauge.refusal("b", 7, 128, held=0) is None
    fd.open_now = 990
    refusals = [gauge.refusal("b", 7, 128, held=0) for _ in range(RECOUNT_EVERY - 1)]
    assert refusals[:-1] == [None] * (RECOUNT_EVERY - 2)
    assert refusals[-1] is not None
    assert fd.counted == 2


def test_the_descriptor_gauge_lets_a_job_through_when_the_exact_count_has_room() -> None:
    fd = Descriptors(open_now=900, limit=1000)
    gauge = DescriptorGauge(fd.count, lambda: fd.limit)
    assert gauge.refusal("b", 7, 0, held=0) is None
    fd.open_now = 200  # descriptors were closed since the base was taken
    assert gauge.refusal("b", 7, 128, held=0) is None
    assert fd.counted == 2


# node.log: the same warning repeated is summed up ---------------------------------------------


def test_a_repeated_warning_is_written_a_few_times_then_counted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    now = [0.0]
    handler.addFilter(RepeatLimiter(handler, burst=3, window=10.0, now=lambda: now[0]))
    logger = logging.getLogger("test_issue12.repeat")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for i in range(50):
            logger.warning("refused %d", i)
            logger.info("info %d", i)  # below warnings: all written
        logger.warning("another kind")
        now[0] = 11.0
        logger.warning("refused %d", 50)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if line.startswith("refused")] == [
        "refused 0",
        "refused 1",
        "refused 2",
        "refused 50",
    ]
    assert "47 more like this in the last 11 s: refused 49" in lines
    assert lines.index("47 more like this in the last 11 s: refused 49") < lines.index("refused 50")
    assert sum(line.startswith("info") for line in lines) == 50
    assert "another kind" in lines


def test_the_limiter_sums_up_what_it_held_back_when_flushed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    limiter = RepeatLimiter(handler, burst=1, window=60.0)
    handler.addFilter(limiter)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "Too many open files", None, None)
    for _ in range(1000):
        handler.handle(record)
    limiter.flush()
    assert stream.getvalue().splitlines()[0] == "Too many open files"
    assert stream.getvalue().splitlines()[1].startswith("999 more like this in the last ")


# The limits on a real daemon: refused, then admitted again once what they counted ended -----


@pytest.fixture(scope="module")
def node_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("limits"), [("a", "b")]).start()
    try:
        asyncio.run(cluster.configure())
        yield cluster
    finally:
        cluster.stop()


@asynccontextmanager
async def peer(cluster: Cluster) -> AsyncIterator[NodeClient]:
    """A connection to b as its peer a (the edge token, not the admin's)."""
    async with NodeClient.connect(
        cluster.url("b"), cluster.edge_token("a", "b"), name="b"
    ) as client:
        yield client


async def started(handle: ExecHandle) -> None:
    event = await anext(aiter(handle))
    assert isinstance(event, Started), event


async def refused(client: NodeClient, target: str | list[str] = "b", **options: Any) -> Failed:
    result: ExecResult = await (await client.exec(target, argv=["true"], **options)).result()
    (failure,) = result.failures
    return failure


async def limited(cluster: Cluster, **limits: int) -> None:
    cluster.generation += 1
    async with cluster.client("b") as admin:
        await admin.configure(cluster.runtime("b", limits=Limits(**limits)))


async def settle(cluster: Cluster, *handles: ExecHandle) -> None:
    """Cancel ``handles`` and wait until b runs nothing: the next test starts from zero."""
    for handle in handles:
        await handle.cancel()
    async with cluster.client("b") as admin:
        for _ in range(100):
            if (await admin.info())["jobs"] == 0:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("jobs still running on b")


def test_limits_jobs(node_b: Cluster) -> None:
    async def main() -> tuple[Failed, ExecResult]:
        await limited(node_b, jobs=2)
        async with peer(node_b) as one, peer(node_b) as two:
            sleepers = [await one.exec("b", argv=["sleep", "30"]) for _ in range(2)]
            for handle in sleepers:
                await started(handle)
            failure = await refused(two)
            await settle(node_b, *sleepers)
            return failure, await (await two.exec("b", argv=["true"])).result()

    failure, again = asyncio.run(main())
    assert (failure.node, failure.hop, failure.code) == ("b", "b", "over-limit")
    assert failure.message == (
        "node 'b': one more job would hold 3 jobs for the node, over limits.jobs = 2"
    )
    assert again["b"].exit is not None


def test_limits_connection_jobs(node_b: Cluster) -> None:
    async def main() -> tuple[Failed, ExecResult]:
        await limited(node_b, connection_jobs=1)
        async with peer(node_b) as one, peer(node_b) as two:
            sleeper = await one.exec("b", argv=["sleep", "30"])
            await started(sleeper)
            failure = await refused(one)
            other = await (await two.exec("b", argv=["true"])).result()
            await settle(node_b, sleeper)
            assert (await (await one.exec("b", argv=["true"])).result())["b"].exit is not None
            return failure, other

    failure, other = asyncio.run(main())
    assert failure.code == "over-limit"
    assert failure.message.endswith("for this connection, over limits.connection_jobs = 1")
    assert other["b"].exit is not None  # another connection is not held back


def test_limits_pipes_count_stdin(node_b: Cluster) -> None:
    async def main() -> Failed:
        await limited(node_b, pipes=6)
        async with peer(node_b) as one:
            sleeper = await one.exec("b", argv=["sleep", "30"])
            await started(sleeper)
            failure = await refused(one, stdin=b"")  # 3 + 4 pipes
            assert (await (await one.exec("b", argv=["true"])).result())["b"].exit is not None
            await settle(node_b, sleeper)
            return failure

    failure = asyncio.run(main())
    assert failure.message == (
        "node 'b': one more job would hold 7 pipes for the node, over limits.pipes = 6"
    )


def test_limits_connection_pipes(node_b: Cluster) -> None:
    async def main() -> Failed:
        await limited(node_b, connection_pipes=5)
        async with peer(node_b) as one, peer(node_b) as two:
            sleeper = await one.exec("b", argv=["sleep", "30"])
            await started(sleeper)
            failure = await refused(one)
            assert (await (await two.exec("b", argv=["true"])).result())["b"].exit is not None
            await settle(node_b, sleeper)
            return failure

    failure = asyncio.run(main())
    assert failure.message.endswith("over limits.connection_pipes = 5")


def test_limits_targets_and_connection_targets(node_b: Cluster) -> None:
    async def main() -> tuple[Failed, Failed, ExecResult]:
        await limited(node_b, targets=2, connection_targets=2)
        async with peer(node_b) as one:
            too_many = await refused(one, ["b", "x", "y"])
            sleeper = await one.exec("b", argv=["sleep", "30"])
            await started(sleeper)
            crowded = await refused(one, ["b", "x"])
            await settle(node_b, sleeper)
            await sleeper.result()  # its exit ends its target on the connection
            return too_many, crowded, await (await one.exec(["b", "x"], argv=["true"])).result()

    too_many, crowded, again = asyncio.run(main())
    assert (too_many.node, too_many.hop, too_many.code) == (None, "b", "over-limit")
    assert too_many.message.endswith("names 3 targets, over limits.targets = 2")
    assert crowded.message.endswith(
        "would bring this connection to 3 open targets, over limits.connection_targets = 2"
    )
    assert again["b"].exit is not None
    assert again["x"].failure is not None
    assert again["x"].failure.code == "unreachable"


def test_limits_descriptor_reserve_against_rlimit_nofile(node_b: Cluster) -> None:
    pid = node_b.pids["b"]
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)

    async def main() -> tuple[Failed, ExecResult]:
        await limited(node_b)
        async with peer(node_b) as one:
            low = len(os.listdir(f"/proc/{pid}/fd")) + 100  # under the reserve of 128
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (low, hard))
            try:
                failure = await refused(one)
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            return failure, await (await one.exec("b", argv=["true"])).result()

    failure, again = asyncio.run(main())
    assert failure.code == "over-limit"
    assert "past RLIMIT_NOFILE = " in failure.message
    assert failure.message.endswith("less limits.descriptor_reserve = 128")
    assert again["b"].exit is not None


def test_the_daemon_raises_its_soft_descriptor_limit(tmp_path: Path) -> None:
    """Started with the common soft default of 1,024, a daemon works with the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        cluster = Cluster(tmp_path, [], ["solo"]).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        raised, _ = resource.prlimit(cluster.pids["solo"], resource.RLIMIT_NOFILE)
    finally:
        cluster.stop()
    assert raised == min(hard, 65536)
