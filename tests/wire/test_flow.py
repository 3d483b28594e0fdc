"""Pure flow control and resume rules: replay buffer, ack policy, fingerprints, new messages."""

from __future__ import annotations

import pytest

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.codec import decode, encode, fingerprint, resume_offsets
from codebolt_topo.wire.flow import SEGMENT, AckPolicy, ReplayBuffer
from codebolt_topo.wire.frames import STDERR, STDOUT
from codebolt_topo.wire.messages import ERROR_CODES


def filled(data: bytes, pieces: int = 7) -> ReplayBuffer:
    buffer = ReplayBuffer()
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        buffer.append(data[i : i + step])
    return buffer


def read_all(buffer: ReplayBuffer, offset: int) -> bytes:
    out = []
    while offset < buffer.end:
        chunk = buffer.read(offset)
        assert 0 < len(chunk) <= SEGMENT
        out.append(chunk)
        offset += len(chunk)
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, 3 * SEGMENT + 17])
def test_replay_returns_exactly_what_was_appended(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    buffer = filled(data)
    assert buffer.end == size
    assert read_all(buffer, 0) == data
    for offset in (0, size // 3, size):
        assert read_all(buffer, offset) == data[offset:]


def test_tiny_writes_coalesce_into_segments() -> None:
    buffer = ReplayBuffer()
    for _ in range(1000):
        buffer.append(b"x" * 10)
    assert buffer.read(0) == b"x" * 10_000


def test_trim_forgets_acknowledged_bytes_and_refuses_older_offsets() -> None:
    data = bytes(5 * SEGMENT)
    buffer = filled(data)
    buffer.trim(2 * SEGMENT + 5)
    assert buffer.base == 2 * SEGMENT + 5
    assert buffer.held == 3 * SEGMENT - 5
    assert read_all(buffer, buffer.base) == data[buffer.base :]
    with pytest.raises(ProtocolError, match="outside held range"):
        buffer.read(SEGMENT)
    buffer.trim(10)  # stale ack: ignored
    assert buffer.base == 2 * SEGMENT + 5
    with pytest.raises(ProtocolError, match="beyond"):
        buffer.trim(buffer.end + 1)


def test_trim_then_append_keeps_offsets() -> None:
    buffer = filled(b"a" * (SEGMENT + 10))
    buffer.trim(buffer.end)
    buffer.append(b"bcd")
    assert buffer.held == 3
    assert buffer.read(SEGMENT + 10) == b"bcd"


def test_empty_buffer_after_full_trim_accepts_new_segment() -> None:
    buffer = filled(b"z" * (2 * SEGMENT))
    buffer.trim(2 * SEGMENT)
    buffer.append(b"q" * (SEGMENT + 1))
    assert read_all(buffer, 2 * SEGMENT) == b"q" * (SEGMENT + 1)


def test_ack_policy_acks_every_half_window() -> None:
    policy = AckPolicy(1000)
    assert not policy.consume(STDOUT, 499)
    assert policy.consume(STDOUT, 500)
    assert policy.take() == (500, 0)
    assert not policy.due
    assert policy.consume(STDERR, 600)
    assert policy.take() == (500, 600)


def test_ack_policy_without_window_never_acks() -> None:
    policy = AckPolicy(None)
    assert not policy.consume(STDOUT, 10**9)


def test_fingerprint_covers_payload_not_routing() -> None:
    base: dict[str, object] = {
        "t": "exec",
        "id": "r",
        "target": ["b", "c"],
        "argv": ["echo", "x"],
        "env": {},
        "cwd": None,
        "timeout": None,
        "stdin": False,
    }
    same = {**base, "id": "other", "hops": 3, "path": ["a"], "env": None}
    assert fingerprint(base) == fingerprint(same)
    for change in (
        {"argv": ["echo", "y"]},
        {"env": {"A": "1"}},
        {"cwd": "w"},
        {"timeout": 1},
        {"stdin": True},
        {"target": ["b"]},
    ):
        assert fingerprint({**base, **change}) != fingerprint(base)


def test_resume_offsets_default_to_zero() -> None:
    msg = {"resume": {"c": {"stdout": 5}}}
    assert resume_offsets(msg, "c") == (5, 0)
    assert resume_offsets(msg, "d") == (0, 0)
    assert resume_offsets({}, "c") == (0, 0)


@pytest.mark.parametrize(
    "msg",
    [
        {"t": "ack", "ch": 1, "stdout": 10, "stderr": 0},
        {"t": "detach", "id": "r"},
        {
            "t": "attach",
            "id": "r#2",
            "origin": "r",
            "target": "c",
            "resume": {"c": {"stdout": 1, "stderr": 2}},
        },
        {"t": "exec", "id": "r", "target": "c", "argv": ["true"], "digest": "ab", "origin": "q"},
        {"t": "started", "id": "r", "ch": 1, "node": "c", "pid": 3, "window": 1024},
        {"t": "info", "detail": True},
    ],
)
def test_new_messages_round_trip(msg: dict[str, object]) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"t":"ack","ch":1,"stdout":1}', "missing field 'stderr'"),
        ('{"t":"attach","id":"r","target":[]}', "non-empty list"),
        ('{"t":"attach","id":"r","target":"c","resume":{"c":{"stdout":-1}}}', "non-negative"),
        ('{"t":"attach","id":"r","target":"c","resume":{"c":3}}', "non-negative"),
    ],
)
def test_new_messages_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode(text)


def test_new_error_codes() -> None:
    assert {"truncated", "conflict"} <= ERROR_CODES


def test_pieces_share_the_appended_chunks_and_cap_at_the_limit() -> None:
    buffer = ReplayBuffer()
    big = bytes(range(256)) * 1024  # 256 KiB, kept as is
    buffer.append(big)
    buffer.append(b"tail")
    pieces = buffer.pieces(10, limit=len(big))
    assert [len(piece) for piece in pieces] == [len(big) - 10, 4]
    assert pieces[0].obj is big  # a view of the stored chunk, not a copy
    assert b"".join(pieces) == (big + b"tail")[10:]
    assert [len(piece) for piece in buffer.pieces(10, limit=100)] == [100]
    buffer.trim(buffer.end)
    assert bytes(pieces[0][:3]) == big[10:13]  # views outlive a trim
    assert buffer.pieces(buffer.end) == []


def test_coalescing_stops_at_the_threshold_and_offsets_stay_exact() -> None:
    from codebolt_topo.wire.flow import COALESCE

    buffer = ReplayBuffer()
    data = b"".join(bytes([i % 251]) * 100 for i in range(3 * COALESCE // 100))
    for i in range(0, len(data), 100):
        buffer.append(data[i : i + 100])
    assert len(buffer._chunks) <= 4
    for offset in (0, 99, COALESCE - 1, COALESCE, len(data) - 1):
        assert read_all(buffer, offset) == data[offset:]
