"""The sans-I/O codec and state machines: no sockets, no event loop."""

from __future__ import annotations

import json

import pytest

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.codec import decode, encode, error_message, targets_of
from codebolt_topo.wire.frames import (
    CHUNK_SIZE,
    HEADER,
    HEADER_SIZE,
    STDERR,
    STDIN,
    STDOUT,
    pack_data,
    rechannel,
    unpack_data,
)
from codebolt_topo.wire.messages import ERROR_CODES
from codebolt_topo.wire.tracking import ChannelTable, JobStream, RequestTracker


def exec_msg(**extra: object) -> dict[str, object]:
    return {"t": "exec", "id": "r1", "target": "b", "argv": ["true"], **extra}


def test_encode_is_compact_json() -> None:
    text = encode({"t": "done", "id": "x"})
    assert text == '{"t":"done","id":"x"}'


def test_encode_keeps_unicode() -> None:
    assert "é" in encode({"t": "notify", "kind": "log", "data": "é"})


@pytest.mark.parametrize(
    "msg",
    [
        exec_msg(),
        exec_msg(target=["b", "c"]),
        {
            "t": "exec",
            "id": "r",
            "target": "a",
            "shell": "echo hi",
            "env": {"A": "1"},
            "cwd": None,
            "timeout": 1.5,
            "stdin": True,
            "hops": 3,
            "path": ["x"],
        },
        {"t": "cancel", "id": "r"},
        {"t": "signal", "ch": 1, "signal": "SIGINT"},
        {"t": "eof", "ch": 2},
        {"t": "notify", "ch": 1, "kind": "progress", "data": {"pct": 5}},
        {"t": "notify", "id": "r", "kind": "log"},
        {"t": "configure", "config": {}},
        {"t": "info"},
        {"t": "started", "id": "r", "ch": 1, "node": "b", "pid": 12, "path": ["a", "b"]},
        {
            "t": "exit",
            "ch": 1,
            "node": "b",
            "code": 0,
            "signal": None,
            "duration": 0.1,
            "timed_out": False,
            "cancelled": False,
            "stdout_bytes": 0,
            "stderr_bytes": 0,
        },
        {"t": "error", "id": "r", "node": None, "hop": "b", "code": "loop", "message": "m"},
        {"t": "done", "id": "r"},
        {"t": "configured", "generation": 3},
    ],
)
def test_round_trip(msg: dict[str, object]) -> None:
    assert decode(encode(msg)) == msg


def test_decode_accepts_bytes() -> None:
    assert decode(b'{"t":"done","id":"x"}')["id"] == "x"


def test_unknown_keys_are_ignored() -> None:
    assert decode(encode({"t": "done", "id": "x", "future": 1}))["future"] == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"id": "x"}', "unknown message type"),
        ('{"t": "launch"}', "unknown message type"),
        ('{"t": 5}', "unknown message type"),
        ('{"t": "done"}', "missing field 'id'"),
        ('{"t": "done", "id": 5}', "wrong type"),
        ('{"t": "eof", "ch": true}', "wrong type"),
        ('{"t": "eof", "ch": "1"}', "wrong type"),
        ('{"t": "exec", "id": "r", "target": "b"}', "exactly one of"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": ["x"], "shell": "x"}', "exactly one"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": []}', "non-empty"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": [1]}', "non-empty"),
        ('{"t": "exec", "id": "r", "target": [], "argv": ["x"]}', "target"),
        ('{"t": "exec", "id": "r", "target": [""], "argv": ["x"]}', "target"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": ["x"], "env": {"A": 1}}', "env"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": ["x"], "path": [1]}', "path"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": ["x"], "stdin": 1}', "wrong type"),
        ('{"t": "exec", "id": "r", "target": "b", "argv": ["x"], "timeout": "1"}', "wrong type"),
        ('{"t": "error", "id": "r", "code": "x"}', "missing field 'message'"),
    ],
)
def test_decode_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode(text)


def test_targets_are_deduplicated_in_order() -> None:
    assert targets_of({"target": ["c", "b", "c"]}) == ["c", "b"]
    assert targets_of({"target": "b"}) == ["b"]


def test_error_message_shape() -> None:
    msg = error_message("r", "c", "b", "unreachable", "no route", ch=4)
    assert msg == {
        "t": "error",
        "id": "r",
        "node": "c",
        "hop": "b",
        "code": "unreachable",
        "message": "no route",
        "ch": 4,
    }
    assert "ch" not in error_message("r", None, "b", "loop", "m")
    assert decode(encode(msg)) == msg


def test_error_codes_documented() -> None:
    assert {"gateway-inactive", "unreachable", "peer-lost", "not-found"} <= ERROR_CODES


def test_header_is_13_bytes_big_endian() -> None:
    assert HEADER_SIZE == 13
    frame = pack_data(STDERR, 0x01020304, 0x0A, b"xy")
    assert frame == b"\x02\x01\x02\x03\x04" + b"\x00" * 7 + b"\x0a" + b"xy"


@pytest.mark.parametrize("size", [0, 1, 100, CHUNK_SIZE])
def test_data_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    stream, ch, offset, view = unpack_data(pack_data(STDOUT, 7, 2**40, payload))
    assert (stream, ch, offset) == (STDOUT, 7, 2**40)
    assert isinstance(view, memoryview)
    assert view == payload


def test_pack_accepts_memoryview() -> None:
    frame = pack_data(STDIN, 1, 0, memoryview(b"abcdef")[2:4])
    assert unpack_data(frame)[3] == b"cd"


def test_unpack_is_zero_copy() -> None:
    frame = pack_data(STDOUT, 1, 0, b"payload")
    assert unpack_data(frame)[3].obj is frame


def test_unpack_rejects_short_and_unknown_stream() -> None:
    with pytest.raises(ProtocolError, match="shorter"):
        unpack_data(b"\x01\x00")
    with pytest.raises(ProtocolError, match="unknown stream"):
        unpack_data(HEADER.pack(3, 1, 0))


def test_rechannel_keeps_everything_but_channel() -> None:
    frame = pack_data(STDERR, 5, 99, b"data")
    assert unpack_data(rechannel(frame, 12))[:3] == (STDERR, 12, 99)
    assert unpack_data(rechannel(frame, 12))[3] == b"data"
    assert rechannel(frame, 5) is frame  # same channel: relayed without a copy


def test_channel_table_allocates_increasing_and_releases() -> None:
    table: ChannelTable[str] = ChannelTable()
    assert [table.allocate(x) for x in "abc"] == [1, 2, 3]
    assert table.get(2) == "b"
    assert table.release(2) == "b"
    assert table.release(2) is None
    assert table.get(2) is None
    assert len(table) == 2
    assert sorted(table.values()) == ["a", "c"]
    assert table.allocate("d") == 4


def test_channel_table_wraps_and_skips_live_channels() -> None:
    table: ChannelTable[str] = ChannelTable()
    table.allocate("one")  # 1 stays live
    table._next = 0xFFFFFFFF
    assert table.allocate("last") == 0xFFFFFFFF
    assert table.allocate("wrapped") == 2  # 1 is live, skipped


def test_tracker_done_when_every_target_ended() -> None:
    tracker = RequestTracker(["b", "c", "b"])
    assert tracker.targets == ["b", "c"]
    assert not tracker.done
    assert tracker.end("c")
    assert not tracker.end("c")
    assert not tracker.end("zz")
    assert tracker.open == ["b"]
    assert tracker.is_open("b")
    assert tracker.end("b")
    assert tracker.done


def test_tracker_end_all() -> None:
    tracker = RequestTracker(["b", "c", "d"])
    tracker.end("c")
    assert tracker.end_all() == ["b", "d"]
    assert tracker.done
    assert tracker.end_all() == []


def test_job_stream_accepts_contiguous_output() -> None:
    job = JobStream("b")
    job.data(STDOUT, 0, 10)
    job.data(STDERR, 0, 3)
    job.data(STDOUT, 10, 5)
    job.exit(15, 3)
    assert job.exited


@pytest.mark.parametrize(("offset", "what"), [(11, "gap"), (9, "duplicate"), (0, "duplicate")])
def test_job_stream_detects_gap_and_duplicate(offset: int, what: str) -> None:
    job = JobStream("b")
    job.data(STDOUT, 0, 10)
    with pytest.raises(ProtocolError, match=f"b: {what} in stdout"):
        job.data(STDOUT, offset, 1)


def test_job_stream_exit_exactly_once() -> None:
    job = JobStream("b")
    job.exit(0, 0)
    with pytest.raises(ProtocolError, match="second exit"):
        job.exit(0, 0)
    with pytest.raises(ProtocolError, match="output after exit"):
        job.data(STDOUT, 0, 1)


def test_job_stream_final_counts_must_match() -> None:
    job = JobStream("b")
    job.data(STDOUT, 0, 4)
    with pytest.raises(ProtocolError, match="ended at 4 bytes, exit says 5"):
        job.exit(5, 0)


def test_job_stream_exit_without_counts() -> None:
    JobStream("b").exit(None, None)


def test_messages_are_json_compatible() -> None:
    exit_msg = {"t": "exit", "ch": 1, "node": "b", "code": None, "signal": "SIGTERM"}
    assert json.loads(encode(exit_msg)) == exit_msg
