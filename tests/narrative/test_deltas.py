"""Delta resolution: bases in any order, chains, cycles, bad instructions, streamed results.

The git CLI writes OFS_DELTA bases before their deltas; other writers (and hostile peers) use
REF_DELTA in any order, on bases that are themselves deltas, or in cycles.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
from conftest import OpenStore
from narrative_crafting import blob, snapshot_commit, tree_of

from codebolt_topo.narrative import CorruptDataError, MissingPrerequisiteError
from codebolt_topo.narrative.deltas import DeltaStream
from codebolt_topo.narrative.packs import object_header
from codebolt_topo.narrative.safety import MODE_FILE

REF = b"refs/narrative/threads/t1"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _insert_all(source: bytes, target: bytes) -> bytes:
    """A delta (copy the first byte of the source, insert the rest) of target on source."""
    ops = b"\x91\x00\x01" + bytes([len(target) - 1]) + target[1:]
    assert target[:1] == source[:1]
    return _varint(len(source)) + _varint(len(target)) + ops


def _ref_delta(base_sha: bytes, delta: bytes) -> bytes:
    return object_header(7, len(delta)) + bytes.fromhex(base_sha.decode()) + zlib.compress(delta)


def _whole(obj: object) -> bytes:
    raw = obj.as_raw_string()  # type: ignore[attr-defined]
    return object_header(obj.type_num, len(raw)) + zlib.compress(raw)  # type: ignore[attr-defined]


def _bundle(commit_id: bytes, records: list[bytes]) -> bytes:
    body = b"PACK\0\0\0\2" + len(records).to_bytes(4, "big") + b"".join(records)
    pack = body + hashlib.sha1(body).digest()
    return b"# v2 git bundle\n" + commit_id + b" " + REF + b"\n\n" + pack


def test_ref_deltas_on_deltas_that_come_later(open_store: OpenStore) -> None:
    """c is a delta on b, which is a delta on a; the pack sends c first, then b, then a."""
    a, b, c = blob(b"A first version\n"), blob(b"A second version\n"), blob(b"A third one\n")
    tree = tree_of({b"a": (MODE_FILE, a), b"b": (MODE_FILE, b), b"c": (MODE_FILE, c)})
    commit = snapshot_commit(tree)
    records = [
        _ref_delta(b.id, _insert_all(b.data, c.data)),
        _ref_delta(a.id, _insert_all(a.data, b.data)),
        _whole(a),
        _whole(tree),
        _whole(commit),
    ]
    store = open_store("b")
    assert store.import_bundle(_bundle(commit.id, records), "peer").created
    store.restore(commit.id.decode())
    assert (store.workspace / "c").read_bytes() == c.data


def test_a_delta_cycle_is_refused(open_store: OpenStore) -> None:
    x, y = blob(b"X content\n"), blob(b"X other\n")
    tree = tree_of({b"x": (MODE_FILE, x), b"y": (MODE_FILE, y)})
    commit = snapshot_commit(tree)
    records = [
        _ref_delta(y.id, _insert_all(y.data, x.data)),
        _ref_delta(x.id, _insert_all(x.data, y.data)),
        _whole(tree),
        _whole(commit),
    ]
    store = open_store("b")
    with pytest.raises(MissingPrerequisiteError):
        store.import_bundle(_bundle(commit.id, records), "peer")
    assert store.heads() == {}


@pytest.mark.parametrize(
    "ops",
    [b"\x91\x10\x05", b"\x00", b"\x05abc"],
    ids=["copy past the base", "instruction 0", "insert cut short"],
)
def test_bad_delta_instructions_are_refused(open_store: OpenStore, ops: bytes) -> None:
    base, target = blob(b"0123456789"), blob(b"01234")
    tree = tree_of({b"t": (MODE_FILE, target), b"b": (MODE_FILE, base)})
    commit = snapshot_commit(tree)
    delta = _varint(len(base.data)) + _varint(len(target.data)) + ops
    records = [_whole(base), _ref_delta(base.id, delta), _whole(tree), _whole(commit)]
    with pytest.raises(CorruptDataError):
        open_store("b").import_bundle(_bundle(commit.id, records), "peer")


def test_the_streamed_delta_matches_the_in_memory_one() -> None:
    """DeltaStream (for large objects) fed in pieces of every size gives dulwich's result."""
    from codebolt_topo.narrative.deltas import apply_in_memory

    base = bytes(range(256)) * 300
    ops = (b"\xb3\x10\x00\x00\x01" + b"\x7f" + b"i" * 127  # copy 256 bytes at 16, insert 127
           + b"\x90\x00" + b"\x03xyz")  # copy 65,536 bytes at 0, insert 3  # fmt: skip
    size = 256 + 127 + 0x10000 + 3
    delta = _varint(len(base)) + _varint(size) + ops
    expected = apply_in_memory(base, delta, size)
    for piece in (1, 2, 3, 7, 64, 4096, len(delta)):
        out: list[bytes] = []
        stream = DeltaStream(lambda at, n: base[at : at + n], len(base), size, out.append)
        for start in range(0, len(delta), piece):
            stream.feed(delta[start : start + piece])
        stream.finish()
        assert b"".join(out) == expected


def test_too_many_deltas_are_refused_before_resolving(
    open_store: OpenStore, tmp_path: Path
) -> None:
    from hostile_inputs import delta_flood_bundle

    from codebolt_topo.narrative import LimitExceededError, Limits

    store = open_store("b")
    store.limits = Limits(max_deltas=10)
    delta_flood_bundle(tmp_path / "d.bundle", 12)
    with pytest.raises(LimitExceededError, match="deltas in pack"):
        store.import_bundle((tmp_path / "d.bundle").read_bytes(), "peer")
    assert store.heads() == {}
    store.limits = Limits()
    assert store.import_bundle((tmp_path / "d.bundle").read_bytes(), "peer").created
