"""Receiving a peer's pack: copy it to disk, walk it once, resolve its deltas, index it.

:func:`spool_pack` copies the pack, as it arrives, into the import's temporary file (checking
its size against :attr:`Limits.max_archive_bytes` and its trailing checksum), so a pack never
has to fit in memory. :func:`receive_pack` then walks it from that file through a sliding
window: every object header, every zlib stream (bounded, see
:mod:`~codebolt_topo.narrative.inflate`) and every delta's sizes are checked against
:class:`~codebolt_topo.narrative.limits.Limits` before anything larger is inflated, and every
whole object is hashed on the way, so a pack without deltas (what our own bundles carry) is
indexed in that one pass.

A pack with deltas (the git CLI's) then has them resolved the way ``git index-pack`` does:
each base, once resolved, resolves the deltas waiting on it, children found through two flat
arrays rather than a dict per delta; bases are read back from the side file and large deltas
are applied as streams (:mod:`~codebolt_topo.narrative.deltas`), so memory never holds more
than a few small objects. A thin pack's external bases come from the store and are appended at
install. The pack itself is kept as it came, like ``git fetch`` keeps a fetched pack.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import zlib
from array import array
from collections.abc import Callable
from typing import BinaryIO

from codebolt_topo.narrative.deltas import IN_MEMORY, DeltaStream, apply_in_memory, delta_sizes
from codebolt_topo.narrative.errors import CorruptDataError, MissingPrerequisiteError
from codebolt_topo.narrative.incoming import KEEP_BLOBS, TYPE_NAMES, Incoming
from codebolt_topo.narrative.inflate import FEED, inflate, inflate_bytes
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.objtable import UNKNOWN, ObjectTable
from codebolt_topo.narrative.window import FileWindow

__all__ = ["External", "receive_pack", "spool_pack"]

_COMMIT, _TREE, _BLOB, _TAG, _OFS_DELTA, _REF_DELTA = 1, 2, 3, 4, 6, 7
_WHOLE = frozenset({_COMMIT, _TREE, _BLOB, _TAG})
_PIECE = 1024 * 1024
_KEPT = 1 << 63
"""Flags a delta's location as an offset in the side file (small deltas, inflated once)."""

External = Callable[[bytes], tuple[int, bytes] | None]
"""Hex id -> ``(type, content)`` of an object the store holds, or None (thin-pack bases)."""


def spool_pack(source: BinaryIO, first: bytes, incoming: Incoming, limits: Limits) -> None:
    """Copy the pack (*first*, then the rest of *source*) into *incoming*, checking its
    size and its trailing SHA-1 on the way."""
    hasher = hashlib.sha1()
    tail, size = b"", 0
    chunk = first
    while chunk:
        size += len(chunk)
        check_limit("pack size", size, limits.max_archive_bytes)
        incoming.file.write(chunk)
        data = tail + chunk if len(chunk) < 20 else None
        if data is not None:
            hasher.update(data[:-20])
            tail = data[-20:]
        else:
            hasher.update(tail)
            hasher.update(memoryview(chunk)[:-20])
            tail = chunk[-20:]
        chunk = source.read(_PIECE)
    incoming.file.flush()
    if size < 32:
        raise CorruptDataError("not a git pack (truncated)")
    if hasher.digest() != tail:
        raise CorruptDataError("pack checksum mismatch (truncated or corrupt)")
    incoming.size, incoming.checksum = size, tail


class _Deltas:
    """The deltas of a pack, in flat arrays (position k: the k-th delta in pack order)."""

    def __init__(self, *, wide: bool) -> None:
        self.index = array("I")  # table index
        self.data_at = array("Q")  # its zlib stream in the pack, or | KEPT: inflated, side file
        self.size = array("Q" if wide else "I")  # inflated delta size
        self.base = array("i")  # table index of its base, -1 until known
        self.ref_ids = ObjectTable()  # REF_DELTA base ids (offset = k)

    def __len__(self) -> int:
        return len(self.index)


def receive_pack(incoming: Incoming, limits: Limits, external: External) -> None:
    """Check and index the spooled pack of *incoming* (see the module docstring).

    Raises :class:`CorruptDataError` for a bad header, an unknown type, a zlib stream that
    disagrees with its header or a bad delta;
    :class:`~codebolt_topo.narrative.errors.LimitExceededError` before inflating past a limit;
    :class:`MissingPrerequisiteError` for a delta base neither in the pack nor in the store.
    Ids are computed from content, so each object hashes to its id by construction.
    """
    window = FileWindow(incoming.fd, incoming.size)
    deltas = _walk(incoming, window, limits)
    incoming.sent = len(incoming.table)
    if deltas:
        _resolve(incoming, window, deltas, external)
    incoming.table.sort()
    twice = incoming.table.duplicate()
    if twice is not None:
        raise CorruptDataError(f"the pack holds object {twice.hex()} twice")


def _walk(incoming: Incoming, window: FileWindow, limits: Limits) -> _Deltas:
    """Walk the pack once with bounded inflation, hashing whole objects on the way."""
    head = bytes(window.view(0, 12))
    if head[:4] != b"PACK" or head[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        raise CorruptDataError("not a git pack (bad header)")
    count = int.from_bytes(head[8:12], "big")
    check_limit("objects in pack", count, limits.max_entries)
    table, side = incoming.table, incoming.side
    deltas = _Deltas(wide=table.sizes.typecode == "Q")
    end, pos, total = incoming.size - 20, 12, 0
    max_object, max_commit = limits.max_object_bytes, limits.max_header_bytes
    view_of, keep = window.view, side.write
    for _ in range(count):
        # This loop runs once per object of the pack: the common path is written out inline.
        start = pos
        view = view_of(pos, FEED + 128)
        if len(view) > 1 and view[0] & 0x80 and not view[1] & 0x80 and (view[0] >> 4) & 7 in _WHOLE:
            # A two-byte header (16 to 2,047 bytes) of a whole object: most of them.
            type_num, size, used = (view[0] >> 4) & 7, (view[0] & 15) | (view[1] << 4), 2
        else:
            type_num, size, used = _header(view, start)
        if size > max_object:
            check_limit("object size", size, max_object)
        if type_num in _WHOLE:
            if type_num in (_COMMIT, _TAG) and size > max_commit:
                check_limit("commit size", size, max_commit)
            kept = side.size if type_num != _BLOB or size <= KEEP_BLOBS else -1
            total += size
            if size < FEED:
                # Small: one bounded call on the view already at hand; anything unusual
                # (more input needed, a size mismatch, a zlib error) goes the careful way.
                inflater = zlib.decompressobj()
                try:
                    out = inflater.decompress(view[used : used + size + 64], size + 1)
                except zlib.error:
                    out = b""
                if inflater.eof and len(out) == size:
                    stop = min(len(view), used + size + 64) - len(inflater.unused_data)
                    sha = hashlib.sha1(TYPE_NAMES[type_num] + b" %d\0" % size + out).digest()
                    if kept >= 0:
                        keep(out)
                    table.append(start, type_num, size, sha, zlib.crc32(view[:stop]), kept)
                    pos = start + stop
                    if total > limits.max_unpacked_bytes:
                        check_limit("unpacked size", total, limits.max_unpacked_bytes)
                    continue
            hasher = hashlib.sha1(TYPE_NAMES[type_num] + b" %d\0" % size)
            sink = hasher.update if kept < 0 else _both(hasher.update, keep)
            pos = inflate(window, start + used, end, size, sink)
            table.append(start, type_num, size, hasher.digest(), window.crc32(start, pos), kept)
        else:
            base: int | bytes
            if type_num == _OFS_DELTA:
                distance, used = _ofs(view, used, start)
                base = _object_at(table.offsets, start - distance, start)
            else:
                if len(view) < used + 20:
                    raise CorruptDataError(f"pack truncated inside a delta base id at {start}")
                base, used = bytes(view[used : used + 20]), used + 20
            delta_kept, head = -1, b""
            if size < FEED:  # small, as most are: inflated once, kept for the resolution
                inflater = zlib.decompressobj()
                try:
                    out = inflater.decompress(view[used : used + size + 64], size + 1)
                except zlib.error:
                    out = b""
                if inflater.eof and len(out) == size:
                    stop = min(len(view), used + size + 64) - len(inflater.unused_data)
                    pos, crc, head = start + stop, zlib.crc32(view[:stop]), out[:20]
                    delta_kept = side.put(out)
            if delta_kept < 0:
                first = bytearray()
                pos = inflate(window, start + used, end, size, _first_bytes(first))
                crc, head = window.crc32(start, pos), bytes(first)
            _base_size, result, _ = delta_sizes(head)
            check_limit("delta result size", result, limits.max_object_bytes)
            index = table.append(start, type_num, result, UNKNOWN, crc, -1)
            k = len(deltas)
            if k >= limits.max_deltas:
                check_limit("deltas in pack", k + 1, limits.max_deltas)
            deltas.index.append(index)
            deltas.data_at.append(start + used if delta_kept < 0 else delta_kept | _KEPT)
            deltas.size.append(size)
            deltas.base.append(base if isinstance(base, int) else -1)
            if isinstance(base, bytes):
                deltas.ref_ids.append(k, 0, 0, base, 0, -1)
            total += size + result
        check_limit("unpacked size", total, limits.max_unpacked_bytes)
    if pos != end:
        raise CorruptDataError("trailing garbage after the last object in the pack")
    return deltas


def _resolve(incoming: Incoming, window: FileWindow, deltas: _Deltas, external: External) -> None:
    """Resolve every delta from its base, bases first (see the module docstring)."""
    table, side = incoming.table, incoming.side
    table.sort(lambda i: table.types[i] in _WHOLE)
    _link_ref_bases(incoming, deltas, external)
    first_child = array("i", [-1]) * len(table)
    next_child = array("i", [-1]) * len(deltas)
    for k in range(len(deltas) - 1, -1, -1):
        base = deltas.base[k]
        if base >= 0:
            next_child[k] = first_child[base]
            first_child[base] = k
    waiting = deltas.ref_ids
    waiting.sort(lambda j: deltas.base[waiting.offsets[j]] < 0)
    still_waiting = any(deltas.base[k] < 0 for k in range(len(deltas)))
    end = incoming.size - 20
    # Roots are the whole objects (sent or borrowed) deltas build on; a delta resolved below
    # becomes whole too, but its children are reached through it, not as a root again.
    roots = array(
        "I", (i for i, c in enumerate(first_child) if c >= 0 and table.types[i] in _WHOLE)
    )
    for root in roots:
        if table.kept_at(root) < 0:  # a large blob: keep it to copy from
            at = side.size
            inflate(window, _data_start(table, window, root), end, table.sizes[root], side.write)
            table.set_kept(root, at)
        stack = array("i", [root])
        while stack:
            base = stack.pop()
            k = first_child[base]
            while k >= 0:
                child = deltas.index[k]
                keep = still_waiting or first_child[child] >= 0
                _apply(incoming, window, end, base, child, deltas, k, keep)
                if still_waiting:
                    for j in _waiting_on(waiting, table.sha(child)):
                        if deltas.base[j] >= 0:  # linked already (an object sent twice)
                            continue
                        deltas.base[j] = child
                        next_child[j] = first_child[child]
                        first_child[child] = j
                if first_child[child] >= 0:
                    stack.append(child)
                k = next_child[k]
    if any(table.types[deltas.index[k]] not in _WHOLE for k in range(len(deltas))):
        missing: set[str] = set()  # the first few: a hostile pack may name half a million
        for j in range(len(waiting)):
            if table.types[deltas.index[waiting.offsets[j]]] not in _WHOLE:
                missing.add(binascii.hexlify(waiting.sha(j)).decode())
                if len(missing) >= 20:
                    break
        if missing:
            raise MissingPrerequisiteError(sorted(missing))
        raise CorruptDataError("pack objects do not resolve (a delta cycle)")


def _data_start(table: ObjectTable, window: FileWindow, index: int) -> int:
    """Where the zlib stream of whole object *index* starts (just after its header)."""
    start = table.offsets[index]
    _type, _size, used = _header(window.view(start, 40), start)
    return start + used


def _link_ref_bases(incoming: Incoming, deltas: _Deltas, external: External) -> None:
    """Point each REF_DELTA at its base: a whole object of the pack, or one the store lends.

    A base that is itself a delta's result is linked once that delta is resolved.
    """
    table, refs = incoming.table, deltas.ref_ids
    borrowed: dict[bytes, int] = {}
    for j in range(len(refs)):
        k, sha = refs.offsets[j], refs.sha(j)
        base = table.find(sha)
        if base < 0:
            base = borrowed.get(sha, -1)
        if base < 0:
            found = external(binascii.hexlify(sha))
            if found is not None:
                type_num, raw = found
                kept = incoming.side.put(raw)
                base = table.append(0, type_num, len(raw), sha, 0, kept)
                borrowed[sha] = base
        deltas.base[k] = base


def _waiting_on(waiting: ObjectTable, sha: bytes) -> list[int]:
    """Positions of the deltas still waiting for base *sha* (REF_DELTA on a delta)."""
    return [waiting.offsets[j] for j in waiting.matches(sha)]


def _apply(
    incoming: Incoming,
    window: FileWindow,
    end: int,
    base: int,
    child: int,
    deltas: _Deltas,
    k: int,
    keep: bool,
) -> None:
    """Resolve delta *k* (table index *child*) against resolved object *base*."""
    table, side = incoming.table, incoming.side
    type_num = table.types[base]
    base_size, base_at = table.sizes[base], table.kept_at(base)
    size = table.sizes[child]
    keep = keep or type_num != _BLOB or size <= KEEP_BLOBS
    hasher = hashlib.sha1(TYPE_NAMES[type_num] + b" %d\0" % size)
    kept = side.size if keep else -1
    if max(base_size, deltas.size[k], size) <= IN_MEMORY:
        if deltas.data_at[k] & _KEPT:
            delta = side.read(deltas.data_at[k] & ~_KEPT, deltas.size[k])
        else:
            delta, _ = inflate_bytes(window, deltas.data_at[k], end, deltas.size[k])
        out = apply_in_memory(side.read(base_at, base_size), delta, size)
        hasher.update(out)
        if keep:
            side.put(out)
    else:

        def read_base(offset: int, n: int) -> bytes:
            return side.read(base_at + offset, n)

        if keep:
            # The result goes after everything kept so far; the base is read from before it.
            stream = DeltaStream(read_base, base_size, size, _both(hasher.update, side.write))
        else:
            stream = DeltaStream(read_base, base_size, size, hasher.update)
        if deltas.data_at[k] & _KEPT:
            stream.feed(side.read(deltas.data_at[k] & ~_KEPT, deltas.size[k]))
        else:
            inflate(window, deltas.data_at[k], end, deltas.size[k], stream.feed)
        stream.finish()
    table.set_sha(child, hasher.digest(), type_num)
    table.set_kept(child, kept)


def _object_at(offsets: array[int], at: int, start: int) -> int:
    """Index of the object starting at offset *at* (an OFS_DELTA's base), which must precede."""
    index = bisect.bisect_left(offsets, at)
    if at < 12 or index >= len(offsets) or offsets[index] != at:
        raise CorruptDataError(f"delta base offset out of range at offset {start}")
    return index


def _header(head: memoryview, start: int) -> tuple[int, int, int]:
    """``(type, size, header length)`` of the object whose first bytes are *head*."""
    if not head:
        raise CorruptDataError("pack truncated inside an object header")
    byte = head[0]
    type_num, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, 1
    while byte & 0x80:
        if pos >= len(head) or shift > 60:
            raise CorruptDataError(f"malformed object header at offset {start}")
        byte = head[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    if type_num not in _WHOLE and type_num not in (_OFS_DELTA, _REF_DELTA):
        raise CorruptDataError(f"unknown object type {type_num} at offset {start}")
    return type_num, size, pos


def _ofs(head: memoryview, pos: int, start: int) -> tuple[int, int]:
    """An OFS_DELTA's distance back to its base, and the offset after it in *head*."""
    if pos >= len(head):
        raise CorruptDataError("pack truncated inside a delta offset")
    byte = head[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        if pos >= len(head) or value > 1 << 56:
            raise CorruptDataError(f"malformed delta offset at offset {start}")
        byte = head[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
        pos += 1
    if value <= 0 or start - value < 12:
        raise CorruptDataError(f"delta base offset out of range at offset {start}")
    return value, pos


def _both(
    first: Callable[[bytes], object], second: Callable[[bytes], object]
) -> Callable[[bytes], None]:
    def sink(data: bytes) -> None:
        first(data)
        second(data)

    return sink


def _first_bytes(into: bytearray) -> Callable[[bytes], None]:
    """A sink keeping the first 32 bytes of a stream (a delta's size header)."""

    def sink(data: bytes) -> None:
        if len(into) < 32:
            into.extend(data[: 32 - len(into)])

    return sink
