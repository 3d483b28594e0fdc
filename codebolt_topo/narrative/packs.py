"""Reading and writing packs: the only way objects enter the shadow repository.

Writing: a snapshot or import stores its objects as one pack plus index, written to a temporary
name and renamed into ``objects/pack`` (the ``.idx`` last, which is what makes a pack visible), so
a store never fills up with thousands of loose objects and a crash leaves no half-visible pack.

Reading what a peer sent is :mod:`~codebolt_topo.narrative.receive`'s job.
"""

from __future__ import annotations

import binascii
import contextlib
import gc
import hashlib
import itertools
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from dulwich.objects import ShaFile

__all__ = [
    "PackEntries",
    "bulk_allocation",
    "install_pack",
    "object_header",
    "pack_index",
    "write_pack",
]

_LARGE_OFFSET = 1 << 31
"""Offsets from here on go to the index's 64-bit table."""


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


PackEntries = list[tuple[bytes, int, int]]
"""``(binary id, offset, crc32)`` per object: what a pack index lists."""


def write_pack(pack_dir: str | os.PathLike[str], objects: Sequence[ShaFile]) -> str | None:
    """Write *objects* as one new pack in *pack_dir*; return its base path (``None`` if empty)."""
    if not objects:
        return None

    def fill(out: BinaryIO) -> tuple[bytes, PackEntries]:
        entries: PackEntries = []
        checksum = hashlib.sha1()
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
        return digest, entries

    return install_pack(pack_dir, fill)


def install_pack(
    pack_dir: str | os.PathLike[str], fill: Callable[[BinaryIO], tuple[bytes, PackEntries]]
) -> str:
    """Have *fill* write a pack to a temporary file, then make it visible with its index.

    *fill* returns the pack's trailing checksum and its entries. The ``.pack`` is renamed into
    place first and the ``.idx`` last: dulwich and git only see a pack once its index exists.
    """
    fd, tmp_pack = tempfile.mkstemp(dir=pack_dir, prefix="tmp_pack_")
    try:
        with os.fdopen(fd, "wb") as out:
            digest, entries = fill(out)
        base = os.path.join(os.fspath(pack_dir), "pack-" + digest.hex())
        os.replace(tmp_pack, base + ".pack")
    except BaseException:
        _unlink(tmp_pack)
        raise
    fd, tmp_idx = tempfile.mkstemp(dir=pack_dir, prefix="tmp_idx_")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pack_index(entries, digest))
        os.replace(tmp_idx, base + ".idx")
    except BaseException:
        _unlink(tmp_idx)
        raise
    return base


def pack_index(entries: PackEntries, pack_checksum: bytes) -> bytes:
    """A version 2 pack index of *entries* (any order), as ``git index-pack`` writes it.

    dulwich's ``write_pack_index`` produces the same bytes but writes each field separately
    through a hashing wrapper, which costs more than receiving the pack; here each table is
    packed at once.
    """
    ordered = sorted(entries)
    count = len(ordered)
    fanout = [0] * 256
    for sha, _offset, _crc in ordered:
        fanout[sha[0]] += 1
    large: list[int] = []
    offsets: list[int] = []
    for _sha, offset, _crc in ordered:
        if offset < _LARGE_OFFSET:
            offsets.append(offset)
        else:
            offsets.append(_LARGE_OFFSET | len(large))
            large.append(offset)
    body = b"".join(
        (
            b"\377tOc\0\0\0\2",
            struct.pack(">256I", *itertools.accumulate(fanout)),
            b"".join(sha for sha, _offset, _crc in ordered),
            struct.pack(f">{count}I", *(crc & 0xFFFFFFFF for _sha, _offset, crc in ordered)),
            struct.pack(f">{count}I", *offsets),
            struct.pack(f">{len(large)}Q", *large),
            pack_checksum,
        )
    )
    return body + hashlib.sha1(body).digest()


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


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
