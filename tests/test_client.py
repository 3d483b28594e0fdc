"""The client's event translation and result collection, fed frames directly (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from codebolt_topo.client import ExecHandle, Exit, Failed, Notification, Output, Started
from codebolt_topo.errors import ExecError, ProtocolError
from codebolt_topo.wire.frames import CHUNK_SIZE, STDERR, STDIN, STDOUT, pack_data


class FakeLink:
    """Records what the handle sends."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []

    async def send(self, data: str | bytes) -> None:
        self.sent.append(data)


def make(stdin: bytes | None = None) -> tuple[ExecHandle, FakeLink]:
    link = FakeLink()
    return ExecHandle(link, "r1", stdin), link  # type: ignore[arg-type]


async def feed(handle: ExecHandle, *items: dict[str, Any] | bytes) -> None:
    for item in items:
        if isinstance(item, bytes):
            await handle.on_data(item)
        else:
            await handle.on_control(item)


def started(ch: int = 1, node: str = "b") -> dict[str, Any]:
    return {"t": "started", "id": "r1", "ch": ch, "node": node, "pid": 9, "path": ["a", node]}


def exit_msg(ch: int = 1, node: str = "b", out: int = 0, err: int = 0) -> dict[str, Any]:
    return {
        "t": "exit",
        "ch": ch,
        "node": node,
        "code": 0,
        "signal": None,
        "duration": 0.5,
        "timed_out": False,
        "cancelled": False,
        "stdout_bytes": out,
        "stderr_bytes": err,
    }


def test_events_in_order() -> None:
    async def main() -> list[object]:
        handle, _ = make()
        await feed(
            handle,
            started(),
            pack_data(STDOUT, 1, 0, b"hi"),
            {"t": "notify", "ch": 1, "node": "b", "kind": "progress", "data": 5},
            pack_data(STDERR, 1, 0, b"e"),
            exit_msg(out=2, err=1),
            {"t": "done", "id": "r1"},
        )
        await handle.on_done()
        return [e async for e in handle]

    assert asyncio.run(main()) == [
        Started("b", 9, ["a", "b"]),
        Output("b", "stdout", b"hi", 0),
        Notification("b", "progress", 5),
        Output("b", "stderr", b"e", 0),
        Exit("b", 0, None, 0.5, False, False),
    ]


def test_result_collects_per_node() -> None:
    async def main() -> Any:
        handle, _ = make()
        await feed(
            handle,
            started(1, "b"),
            started(2, "c"),
            pack_data(STDOUT, 1, 0, b"b1"),
            pack_data(STDOUT, 2, 0, b"c1"),
            pack_data(STDOUT, 1, 2, b"b2"),
            exit_msg(1, "b", out=4),
            exit_msg(2, "c", out=2),
            {
                "t": "error",
                "id": "r1",
                "node": "d",
                "hop": "a",
                "code": "unreachable",
                "message": "no route",
            },
        )
        await handle.on_done()
        return await handle.result()

    result = asyncio.run(main())
    assert result["b"].stdout == b"b1b2"
    assert result["c"].stdout == b"c1"
    assert result["d"].failure == Failed("d", "a", "unreachable", "no route")
    with pytest.raises(ExecError, match="no route") as info:
        result.raise_for_failures()
    assert (info.value.node, info.value.hop, info.value.code) == ("d", "a", "unreachable")


def test_gap_raises_protocol_error() -> None:
    async def main() -> None:
        handle, _ = make()
        await feed(handle, started(), pack_data(STDOUT, 1, 5, b"x"))
        await handle.on_done()
        async for _ in handle:
            pass

    with pytest.raises(ProtocolError, match="gap in stdout"):
        asyncio.run(main())


def test_wrong_final_count_raises() -> None:
    async def main() -> None:
        handle, _ = make()
        await feed(handle, started(), exit_msg(out=3))
        async for _ in handle:
            pass

    with pytest.raises(ProtocolError, match="exit says 3"):
        asyncio.run(main())


def test_lost_connection_ends_iteration_with_failure() -> None:
    async def main() -> list[object]:
        handle, _ = make()
        await feed(handle, started())
        await handle.on_lost("gone")
        return [e async for e in handle]

    events = asyncio.run(main())
    assert isinstance(events[-1], Failed)
    assert events[-1].code == "peer-lost"


def test_controls_use_the_job_channel() -> None:
    async def main() -> list[str | bytes]:
        handle, link = make()
        await feed(handle, started(7, "c"))
        await handle.signal("c", "SIGINT")
        await handle.notify("hello", {"x": 1}, node="c")
        await handle.notify("all")
        await handle.cancel()
        with pytest.raises(ExecError, match="no running job on node 'zz'"):
            await handle.signal("zz", "SIGINT")
        return link.sent

    assert asyncio.run(main()) == [
        '{"t":"signal","ch":7,"signal":"SIGINT"}',
        '{"t":"notify","ch":7,"kind":"hello","data":{"x":1}}',
        '{"t":"notify","id":"r1","kind":"all","data":null}',
        '{"t":"cancel","id":"r1"}',
    ]


def test_stdin_is_sent_in_chunks_then_eof() -> None:
    data = b"x" * (CHUNK_SIZE + 10)

    async def main() -> list[str | bytes]:
        handle, link = make(stdin=data)
        await feed(handle, started(3))
        for _ in range(10):
            await asyncio.sleep(0)
        return link.sent

    sent = asyncio.run(main())
    assert sent[0] == pack_data(STDIN, 3, 0, data[:CHUNK_SIZE])
    assert sent[1] == pack_data(STDIN, 3, CHUNK_SIZE, data[CHUNK_SIZE:])
    assert sent[2] == '{"t":"eof","ch":3}'


def test_exec_needs_argv_or_shell() -> None:
    from codebolt_topo.client import NodeClient

    client = NodeClient(FakeLink())  # type: ignore[arg-type]
    with pytest.raises(ExecError, match="exactly one"):
        asyncio.run(client.exec("b"))
