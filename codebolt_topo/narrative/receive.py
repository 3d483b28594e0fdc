"""Receiving a peer's pack: check it, index it once, and store it as it came.

:func:`receive_pack` first walks the raw pack with bounded inflation, checking the trailer
checksum, every object header, every zlib stream and every delta's result size against
:class:`~codebolt_topo.narrative.limits.Limits` before anything larger is inflated, so a
decompression bomb is refused early. The same walk hashes every whole object, so a pack without
deltas (what our own bundles carry) is indexed in that one pass; a pack with deltas (the git
CLI's) has them resolved by dulwich's delta-chain walk, each object inflated once more.

:func:`store_pack` then writes the received bytes unchanged beside an index, as ``git fetch``
keeps a fetched pack: nothing is re-encoded or recompressed. A thin pack (deltas against objects
the receiver already holds) gets those bases appended first, as ``git index-pack --fix-thin``
does, because a pack on disk must be self-contained.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, ObjectFormatException
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import ObjectID, ShaFile
from dulwich.pack import (
    DeltaChainIterator,
    PackData,
    UnpackedObject,
    UnresolvedDeltas,
)

from codebolt_topo.narrative.errors import CorruptDataError, MissingPrerequisiteError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.packs import PackEntries, install_pack, object_header

__all__ = ["ReceivedPack", "receive_pack", "store_pack"]

_BLOB, _OFS_DELTA, _REF_DELTA = 3, 6, 7
_VALID_TYPES = frozenset({1, 2, 3, 4, _OFS_DELTA, _REF_DELTA})
_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_FEED = 65536


@dataclass(slots=True)
class ReceivedPack:
    """A received pack, checked and indexed once, to be stored byte for byte.

    Blobs are never materialised (any content is a valid blob; only their ids and types matter to
    the import checks), so a large bundle costs one bounded inflation of every object, plus delta
    resolution when the sender used deltas, and no recompression.
    """

    data: bytes
    """The pack, completed with its external delta bases when it arrived thin."""
    entries: PackEntries
    """Every object in :attr:`data`, for its index."""
    kinds: dict[bytes, int]
    """Hex id -> type number of every object the sender sent (not the appended bases)."""
    parsed: dict[bytes, ShaFile]
    """Commits, trees and tags by hex id: what the import must look inside."""


@dataclass(slots=True)
class _Record:
    offset: int
    end: int
    type_num: int
    base: int | bytes | None = None
    """Offset of an OFS_DELTA's base, or the binary id of a REF_DELTA's."""
    sha: bytes = b""
    """Binary id of a whole object (deltas are resolved later)."""
    raw: bytes | None = None
    """Content of a whole non-blob object."""


def receive_pack(
    data: bytes, limits: Limits, resolve_external: Callable[[bytes], tuple[int, bytes]]
) -> ReceivedPack:
    """Check and index a raw pack; *resolve_external* gives thin-pack bases by hex id.

    Raises :class:`CorruptDataError` for truncation, a bad checksum, an unknown type, a zlib
    stream that disagrees with its header or a bad delta;
    :class:`~codebolt_topo.narrative.errors.LimitExceededError` before inflating past a limit;
    :class:`MissingPrerequisiteError` for a delta base neither in the pack nor in the store.
    Ids are computed from content, so each object hashes to its id by construction.
    """
    records = _scan(data, limits)
    if all(r.base is None for r in records):
        kinds = {binascii.hexlify(r.sha): r.type_num for r in records}
        entries = [(r.sha, r.offset, zlib.crc32(data[r.offset : r.end])) for r in records]
        raws = [(r.sha, r.type_num, r.raw) for r in records if r.raw is not None]
        return ReceivedPack(data, entries, kinds, _parse(raws))
    return _resolve_deltas(data, records, resolve_external)


def store_pack(pack_dir: str | os.PathLike[str], pack: ReceivedPack) -> str:
    """Write *pack* as received, plus its index, into *pack_dir*; return its base path."""

    def fill(out: BinaryIO) -> tuple[bytes, PackEntries]:
        out.write(pack.data)
        # An object sent twice is indexed once (its first copy), as git's index requires.
        first = {sha: (sha, offset, crc) for sha, offset, crc in reversed(pack.entries)}
        return pack.data[-20:], list(first.values())

    return install_pack(pack_dir, fill)


def _scan(data: bytes, limits: Limits) -> list[_Record]:
    """Walk the pack once with bounded inflation, hashing whole objects on the way."""
    if len(data) < 32 or data[:4] != b"PACK" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        raise CorruptDataError("not a git pack (bad header or truncated)")
    if hashlib.sha1(memoryview(data)[:-20]).digest() != data[-20:]:
        raise CorruptDataError("pack checksum mismatch (truncated or corrupt)")
    count = int.from_bytes(data[8:12], "big")
    check_limit("objects in pack", count, limits.max_entries)
    end, pos, total = len(data) - 20, 12, 0
    view = memoryview(data)
    records: list[_Record] = []
    for _ in range(count):
        start = pos
        type_num, size, pos = _read_header(data, pos, end)
        if type_num not in _VALID_TYPES:
            raise CorruptDataError(f"unknown object type {type_num} at offset {start}")
        record = _Record(start, 0, type_num)
        if type_num == _OFS_DELTA:
            distance, pos = _read_ofs(data, pos, end)
            if distance <= 0 or start - distance < 12:
                raise CorruptDataError(f"delta base offset out of range at offset {start}")
            record.base = start - distance
        elif type_num == _REF_DELTA:
            if pos + 20 > end:
                raise CorruptDataError("pack truncated inside a delta base id")
            record.base, pos = data[pos : pos + 20], pos + 20
        check_limit("object size", size, limits.max_object_bytes)
        if record.base is None:
            pos, record.sha, record.raw = _whole(data, view, pos, end, type_num, size)
        else:
            pos, head = _skip_zlib(data, pos, end, size)
            _, at = _varint(head, 0)
            target, _ = _varint(head, at)
            check_limit("delta result size", target, limits.max_object_bytes)
            size += target
        record.end = pos
        records.append(record)
        total += size
        check_limit("unpacked size", total, limits.max_unpacked_bytes)
    if pos != end:
        raise CorruptDataError("trailing garbage after the last object in the pack")
    return records


def _whole(
    data: bytes, view: memoryview, pos: int, end: int, type_num: int, size: int
) -> tuple[int, bytes, bytes | None]:
    """Inflate the whole object at *pos*: the offset after it, its id, its content unless a blob.

    Most objects are small: one bounded ``decompress`` call does, and anything unusual (a
    stream that needs more input, a size mismatch, a zlib error) goes the careful way, which
    also names the problem.
    """
    header = _TYPE_NAMES[type_num] + b" %d\0" % size
    if size < _FEED:
        inflater = zlib.decompressobj()
        fed = min(end, pos + size + 64)  # zlib adds at most ~11 bytes to 64 KiB
        try:
            out = inflater.decompress(view[pos:fed], size + 1)
        except zlib.error:
            out = b""
        if inflater.eof and len(out) == size:
            raw = None if type_num == _BLOB else out
            return fed - len(inflater.unused_data), hashlib.sha1(header + out).digest(), raw
    hasher = hashlib.sha1(header)
    kept: list[bytes] | None = None if type_num == _BLOB else []
    pos, _ = _skip_zlib(data, pos, end, size, hasher.update, kept)
    return pos, hasher.digest(), None if kept is None else b"".join(kept)


class _Resolver(DeltaChainIterator[tuple[bytes, int, int, bytes | None]]):
    """dulwich's delta-chain walk (each object inflated once), keeping only what we need."""

    def _result(self, unpacked: UnpackedObject) -> tuple[bytes, int, int, bytes | None]:
        assert unpacked.offset is not None
        assert unpacked.obj_type_num is not None
        type_num = unpacked.obj_type_num
        raw = None if type_num == _BLOB else b"".join(unpacked.obj_chunks or ())
        return unpacked.sha(), unpacked.offset, type_num, raw


def _resolve_deltas(
    data: bytes, records: list[_Record], resolve_external: Callable[[bytes], tuple[int, bytes]]
) -> ReceivedPack:
    """Resolve a pack with deltas (the git CLI's); append external bases to a thin one."""

    def resolve(sha: bytes) -> tuple[int, list[bytes]]:
        type_num, raw = resolve_external(binascii.hexlify(sha))  # KeyError: not external
        return type_num, [raw]

    walker = _Resolver(None, hashlib.sha1, resolve_ext_ref=resolve)
    for r in records:
        delta_base = r.offset - r.base if isinstance(r.base, int) else r.base
        walker.record(UnpackedObject(r.type_num, delta_base=delta_base, offset=r.offset))
    crcs = {r.offset: zlib.crc32(data[r.offset : r.end]) for r in records}
    try:
        with PackData.from_file(BytesIO(data), object_format=DEFAULT_OBJECT_FORMAT) as pack:
            walker.set_pack_data(pack)
            resolved = list(walker)
    except UnresolvedDeltas as exc:
        raise MissingPrerequisiteError(sorted(s.decode() for s in exc.shas)) from None
    except (zlib.error, ApplyDeltaError, ChecksumMismatch, ObjectFormatException) as exc:
        raise CorruptDataError(f"corrupt pack: {exc}") from exc
    except (AssertionError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"corrupt pack: {exc!r}") from exc
    if len(resolved) != len(records):
        raise CorruptDataError("pack objects do not resolve (delta cycle)")
    kinds = {binascii.hexlify(sha): type_num for sha, _o, type_num, _r in resolved}
    entries = [(sha, offset, crcs[offset]) for sha, offset, _t, _r in resolved]
    parsed = _parse([(sha, t, raw) for sha, _o, t, raw in resolved if raw is not None])
    external = walker.ext_refs()
    if external:
        data = _complete_thin(data, external, entries, resolve_external)
    return ReceivedPack(data, entries, kinds, parsed)


def _complete_thin(
    data: bytes,
    external: Sequence[bytes],
    entries: PackEntries,
    resolve_external: Callable[[bytes], tuple[int, bytes]],
) -> bytes:
    """Append the external bases as whole objects, as ``git index-pack --fix-thin`` does.

    A pack on disk must be self-contained; offsets of the received objects do not move (the
    header keeps its size), only the count and the trailing checksum change.
    """
    body = bytearray(data[:-20])
    body[8:12] = (int.from_bytes(data[8:12], "big") + len(external)).to_bytes(4, "big")
    for sha in external:
        type_num, raw = resolve_external(binascii.hexlify(sha))
        record = object_header(type_num, len(raw)) + zlib.compress(raw, 1)
        entries.append((bytes(sha), len(body), zlib.crc32(record)))
        body += record
    return bytes(body) + hashlib.sha1(body).digest()


def _parse(raws: Iterable[tuple[bytes, int, bytes | None]]) -> dict[bytes, ShaFile]:
    out: dict[bytes, ShaFile] = {}
    for sha, type_num, raw in raws:
        hex_sha = binascii.hexlify(sha)
        try:
            out[hex_sha] = ShaFile.from_raw_string(type_num, raw or b"", ObjectID(hex_sha))
        except (ObjectFormatException, ValueError) as exc:
            raise CorruptDataError(f"malformed object {hex_sha.decode()}: {exc}") from exc
    return out


def _read_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    if pos >= end:
        raise CorruptDataError("pack truncated inside an object header")
    byte = data[pos]
    type_num, size, shift = (byte >> 4) & 7, byte & 15, 4
    pos += 1
    while byte & 0x80:
        if pos >= end or shift > 60:
            raise CorruptDataError("malformed object header in pack")
        byte = data[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    return type_num, size, pos


def _read_ofs(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise CorruptDataError("pack truncated inside a delta offset")
    byte = data[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        if pos >= end or value > 1 << 56:
            raise CorruptDataError("malformed delta offset in pack")
        byte = data[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
        pos += 1
    return value, pos


def _skip_zlib(
    data: bytes,
    pos: int,
    end: int,
    size: int,
    sink: Callable[[bytes], object] | None = None,
    kept: list[bytes] | None = None,
) -> tuple[int, bytes]:
    """Inflate one stream in bounded steps; return the offset after it and its first bytes.

    Every inflated chunk goes to *sink* (a hash) and, when given, is appended to *kept*.
    """
    inflater = zlib.decompressobj()
    view = memoryview(data)
    produced, head, fed = 0, b"", pos
    feed = min(end - pos, size + 64)
    try:
        while not inflater.eof:
            if fed >= end:
                raise CorruptDataError("pack truncated inside a zlib stream")
            chunk = view[fed : min(end, fed + feed)]
            fed += len(chunk)
            feed = _FEED
            out = inflater.decompress(chunk, _FEED)
            while True:
                produced += len(out)
                if len(head) < 32:
                    head += out[:32]
                if produced > size:
                    raise CorruptDataError("object inflates beyond its declared size")
                if sink is not None:
                    sink(out)
                if kept is not None:
                    kept.append(out)
                if not inflater.unconsumed_tail:
                    break
                out = inflater.decompress(inflater.unconsumed_tail, _FEED)
    except zlib.error as exc:
        raise CorruptDataError(f"corrupt zlib stream in pack: {exc}") from exc
    if produced != size:
        raise CorruptDataError("object size does not match its header")
    return fed - len(inflater.unused_data), head


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CorruptDataError("malformed delta header in pack")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            return value, pos
