"""An exec request that asks for snapshots: the executing node records its workspace before and
after the job, in the same request, and the exit carries what it recorded."""

from __future__ import annotations

import asyncio
import io
import tarfile
from typing import Any

import pytest

from codebolt_topo.client import Exit, SnapshotRequest
from codebolt_topo.errors import ProtocolError
from codebolt_topo.narrative.remote import NodeNarrative
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.codec import decode, encode, fingerprint

pytestmark = pytest.mark.slow


def _members(tar_gz: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as archive:
        return set(archive.getnames())


def test_snapshots_bracket_the_job_through_hops_and_come_back_in_the_exit(chain: Cluster) -> None:
    request = SnapshotRequest(objective="obj", thread="snap-both", run="r1")

    async def main() -> tuple[Exit, list[dict[str, Any]], bytes, bytes]:
        async with chain.client("a") as client:
            handle = await client.exec("c", shell="echo made > made.txt; exit 3", snapshot=request)
            [exit_event] = [e async for e in handle if isinstance(e, Exit)]
            store = NodeNarrative(client, "c")
            log = await store.call("log")
            before, after = (s["snapshot_id"] for s in exit_event.snapshots)
            return (
                exit_event,
                log,
                await store.run("export-tar", before),
                await store.run("export-tar", after),
            )

    exit_event, log, before_tar, after_tar = asyncio.run(main())
    assert exit_event.code == 3  # the job's own status, snapshots or not
    taken = exit_event.snapshots
    assert [s["when"] for s in taken] == ["before", "after"]
    assert [s["name"] for s in taken] == [
        "before: echo made > made.txt; exit 3",
        "after: echo made > made.txt; exit 3 (exit 3)",
    ]
    for snapshot in taken:
        assert (snapshot["objective"]["id"], snapshot["thread"]["id"], snapshot["run"]["id"]) == (
            "obj",
            "snap-both",
            "r1",
        )
        assert snapshot["environment"] == "c"  # taken where the job ran, not at the entry
    assert taken[1]["parents"] == [taken[0]["commit"]]
    [thread] = [t for o in log for t in o["threads"] if t["id"] == "snap-both"]
    assert [s["snapshot_id"] for s in thread["runs"][0]["snapshots"]] == [
        s["snapshot_id"] for s in taken
    ]
    assert not any(name.endswith("made.txt") for name in _members(before_tar))
    assert any(name.endswith("made.txt") for name in _members(after_tar))


def test_a_failed_snapshot_is_reported_and_the_job_still_runs(chain: Cluster) -> None:
    request = SnapshotRequest(
        objective="obj", thread="bad/../thread", run="r", when="after", name="custom"
    )

    async def main() -> Exit:
        async with chain.client("a") as client:
            handle = await client.exec("b", argv=["true"], snapshot=request)
            [exit_event] = [e async for e in handle if isinstance(e, Exit)]
            return exit_event

    exit_event = asyncio.run(main())
    assert exit_event.code == 0
    [failed] = exit_event.snapshots
    assert failed["when"] == "after"
    assert "thread" in failed["error"]


def test_without_a_snapshot_request_the_exit_carries_none(chain: Cluster) -> None:
    async def main() -> Exit:
        async with chain.client("a") as client:
            handle = await client.exec("b", argv=["true"])
            [exit_event] = [e async for e in handle if isinstance(e, Exit)]
            return exit_event

    assert asyncio.run(main()).snapshots == ()


@pytest.mark.parametrize(
    ("snapshot", "error"),
    [
        ({"when": "during", "objective": "o", "thread": "t", "run": "r"}, "'when' must be one of"),
        ({"when": "both", "objective": "o", "thread": "", "run": "r"}, "'thread' must be"),
        ({"when": "both", "objective": "o", "thread": "t"}, "'run' must be"),
        (
            {"when": "both", "objective": "o", "thread": "t", "run": "r", "name": 5},
            "'name' must be",
        ),
    ],
)
def test_malformed_snapshot_requests_are_refused(snapshot: dict[str, Any], error: str) -> None:
    message = {"t": "exec", "id": "x", "target": "a", "argv": ["true"], "snapshot": snapshot}
    with pytest.raises(ProtocolError, match=error):
        decode(encode(message))


def test_the_snapshot_request_is_part_of_the_fingerprint() -> None:
    base = {"t": "exec", "id": "x", "target": "a", "argv": ["true"]}
    with_snapshot = {**base, "snapshot": SnapshotRequest("o", "t", "r").to_wire()}
    assert fingerprint(base) != fingerprint(with_snapshot)
