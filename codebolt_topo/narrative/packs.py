"""Reading and writing packs: the only way objects enter the shadow repository.

Writing: a snapshot or import stores its objects as one pack plus index, written to a temporary
name and renamed into ``objects/pack`` (the ``.idx`` last, which is what makes a pack visible), so
a store never fills up with thousands of loose objects and a crash leaves no half-visible pack.

Reading: :func:`inflate_pack` first walks the raw pack with bounded inflation (checking the trailer
checksum, every object header, every zlib stream and every delta's result size against
:class:`~codebolt_topo.narrative.limits.Limits`) and only then lets dulwich resolve the deltas, so
a decompression bomb is refused before it is inflated.
"""

from __future__ import annotations

import binascii
import contextlib
import gc
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, ObjectFormatException
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import ShaFile
from dulwich.pack import PackData, PackInflater, write_pack_index

from codebolt_topo.narrative.errors import CorruptDataError, MissingPrerequisiteError
from codebolt_topo.narrative.limits import Limits, check_limit

__all__ = ["bulk_allocation", "inflate_pack", "object_header", "prescan_pack", "write_pack"]

_OFS_DELTA, _REF_DELTA = 6, 7
_VALID_TYPES = frozenset({1, 2, 3, 4, _OFS_DELTA, _REF_DELTA})
_FEED = 65536


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while tens of thousands of objects are created.

    Snapshots and imports allocate one Python object per git object and free them together;
    none of them form cycles, yet each generation-2 pass rescans them all, which can cost more
    than the work itself on a large workspace.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_pack(pack_dir: str | os.PathLike[str], objects: Sequence[ShaFile]) -> str | None:
    """Write *objects* as one new pack in *pack_dir*; return its base path (``None`` if empty)."""
    if not objects:
        return None
    entries: list[tuple[bytes, int, int]] = []
    checksum = hashlib.sha1()
    fd, tmp_pack = tempfile.mkstemp(dir=pack_dir, prefix="tmp_pack_")
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0

            def emit(chunk: bytes) -> None:
                nonlocal offset
                out.write(chunk)
                checksum.update(chunk)
                offset += len(chunk)

            emit(b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big"))
            for obj in objects:
                raw = obj.as_raw_string()
                record = object_header(obj.type_num, len(raw)) + zlib.compress(raw, 1)
                entries.append((binascii.unhexlify(obj.id), offset, zlib.crc32(record)))
                emit(record)
            digest = checksum.digest()
            out.write(digest)
        base = os.path.join(os.fspath(pack_dir), "pack-" + digest.hex())
        os.replace(tmp_pack, base + ".pack")
    except BaseException:
        _unlink(tmp_pack)
        raise
    fd, tmp_idx = tempfile.mkstemp(dir=pack_dir, prefix="tmp_idx_")
    try:
        with os.fdopen(fd, "wb") as out:
            write_pack_index(out, sorted(entries), digest, version=2)
        os.replace(tmp_idx, base + ".idx")
    except BaseException:
        _unlink(tmp_idx)
        raise
    return base


def prescan_pack(data: bytes, limits: Limits) -> int:
    """Check a raw pack's structure and sizes without inflating more than 64 KiB at a time.

    Returns the number of objects. Raises :class:`CorruptDataError` for truncation, a bad trailer
    checksum, an unknown object type or a zlib stream that disagrees with its header, and
    :class:`~codebolt_topo.narrative.errors.LimitExceededError` for oversize content.
    """
    if len(data) < 32 or data[:4] != b"PACK" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        raise CorruptDataError("not a git pack (bad header or truncated)")
    if hashlib.sha1(memoryview(data)[:-20]).digest() != data[-20:]:
        raise CorruptDataError("pack checksum mismatch (truncated or corrupt)")
    count = int.from_bytes(data[8:12], "big")
    check_limit("objects in pack", count, limits.max_entries)
    end, pos, total = len(data) - 20, 12, 0
    for _ in range(count):
        start = pos
        type_num, size, pos = _read_header(data, pos, end)
        if type_num not in _VALID_TYPES:
            raise CorruptDataError(f"unknown object type {type_num} at offset {start}")
        if type_num == _OFS_DELTA:
            distance, pos = _read_ofs(data, pos, end)
            if distance <= 0 or start - distance < 12:
                raise CorruptDataError(f"delta base offset out of range at offset {start}")
        elif type_num == _REF_DELTA:
            pos += 20
        check_limit("object size", size, limits.max_object_bytes)
        pos, head = _skip_zlib(data, pos, end, size)
        if type_num in (_OFS_DELTA, _REF_DELTA):
            _, at = _varint(head, 0)
            target, _ = _varint(head, at)
            check_limit("delta result size", target, limits.max_object_bytes)
            size += target
        total += size
        check_limit("unpacked size", total, limits.max_unpacked_bytes)
    if pos != end:
        raise CorruptDataError("trailing garbage after the last object in the pack")
    return count


def inflate_pack(
    data: bytes, limits: Limits, resolve_external: Callable[[bytes], tuple[int, bytes]]
) -> list[ShaFile]:
    """Return every object of a checked pack, resolving thin-pack bases with *resolve_external*.

    Ids are computed from content, so each returned object hashes to its id by construction.
    """
    prescan_pack(data, limits)

    def resolve(sha: bytes) -> tuple[int, bytes]:
        try:
            return resolve_external(binascii.hexlify(sha))
        except KeyError:
            raise MissingPrerequisiteError([binascii.hexlify(sha).decode()]) from None

    try:
        with PackData.from_file(BytesIO(data), object_format=DEFAULT_OBJECT_FORMAT) as pack:
            return list(PackInflater.for_pack_data(pack, resolve_ext_ref=resolve))
    except (zlib.error, ApplyDeltaError, ChecksumMismatch, ObjectFormatException) as exc:
        raise CorruptDataError(f"corrupt pack: {exc}") from exc
    except (AssertionError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"corrupt pack: {exc!r}") from exc


def object_header(type_num: int, size: int) -> bytes:
    """The variable-length type-and-size header that precedes each object in a pack."""
    out = bytearray()
    byte = (type_num << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


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


def _skip_zlib(data: bytes, pos: int, end: int, size: int) -> tuple[int, bytes]:
    """Inflate one stream in bounded steps; return the offset after it and its first bytes."""
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


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
