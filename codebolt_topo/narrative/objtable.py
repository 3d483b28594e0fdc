"""The objects of one received pack, kept in flat arrays rather than one Python object each.

An import may carry up to :attr:`Limits.max_entries` objects. A dict or a dataclass per object
costs 100-200 bytes, which at a million objects is several hundred MiB; here one object costs
37 bytes (its id, type, offset, CRC, size and where its content was kept), so memory
stays bounded by the limit rather than growing with Python's per-object overhead.

Lookups by id go through :meth:`ObjectTable.sort`: up to 65,536 objects a dict (a few MiB),
beyond that a counting sort on the first two bytes of the id into buckets, then a short binary
search inside one bucket. The same order writes the pack
index (:meth:`ObjectTable.index`).
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

__all__ = ["UNKNOWN", "ObjectTable"]

UNKNOWN = b"\0" * 20
"""The id of an object not resolved yet (a delta)."""

_SMALL = 4096
"""Buckets up to this size are sorted by comparison."""
_DICT_MAX = 65536
"""Tables up to this size are looked up through a dict (about 120 bytes per object)."""

_LARGE_OFFSET = 1 << 31
"""Offsets from here on go to the index's 64-bit table."""


class ObjectTable:
    """Per object: binary id, type, offset in the pack, CRC, size, and kept-content offset.

    ``size`` is the inflated size of the object itself (for a delta, of its result once
    known); :meth:`kept_at` is where :class:`~codebolt_topo.narrative.sidefile.SideFile` holds
    its content, or -1. Offsets and sizes take four bytes each unless *wide* (an import whose
    limits allow 4 GiB or more): 37 bytes an object.
    """

    def __init__(self, *, wide: bool = False) -> None:
        self.ids = bytearray()
        self.types = bytearray()
        self.offsets = array("Q" if wide else "I")
        self.crcs = array("I")
        self.sizes = array("Q" if wide else "I")
        self._kept = array("q" if wide else "I")
        self._none = -1 if wide else 0xFFFFFFFF
        self._order = array("I")
        self._starts = array("I")
        self._shift = 0
        self._dict: dict[bytes, int] | None = None
        self._copies: dict[bytes, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.types)

    def append(self, offset: int, type_num: int, size: int, sha: bytes, crc: int, kept: int) -> int:
        """Add one object; returns its index."""
        self.ids += sha
        self.types.append(type_num)
        self.offsets.append(offset)
        self.crcs.append(crc & 0xFFFFFFFF)
        self.sizes.append(size)
        self._kept.append(self._none if kept < 0 else kept)
        return len(self.types) - 1

    def kept_at(self, index: int) -> int:
        """Where the side file holds object *index*'s content, or -1."""
        at = self._kept[index]
        return -1 if at == self._none else at

    def set_kept(self, index: int, at: int) -> None:
        self._kept[index] = self._none if at < 0 else at

    def truncate(self, count: int) -> None:
        """Forget every object from index *count* on (a writer took them back)."""
        del self.ids[count * 20 :], self.types[count:], self.offsets[count:]
        del self.crcs[count:], self.sizes[count:], self._kept[count:]

    def sha(self, index: int) -> bytes:
        """The binary id of object *index* (:data:`UNKNOWN` until resolved)."""
        return bytes(self.ids[index * 20 : index * 20 + 20])

    def set_sha(self, index: int, sha: bytes, type_num: int) -> None:
        """Record what a resolved delta turned out to be."""
        self.ids[index * 20 : index * 20 + 20] = sha
        self.types[index] = type_num

    def sort(self, include: Callable[[int], bool] | None = None) -> None:
        """Order the objects by id for :meth:`find` (only those *include* accepts, if given).

        Ties (an object sent twice) keep pack order, so :meth:`find` sees the first copy
        first. Up to :data:`_DICT_MAX` objects a dict answers lookups (a few MiB at most);
        beyond, buckets do, at four bytes per object.
        """
        members = range(len(self)) if include is None else filter(include, range(len(self)))
        ids = self.ids
        self._dict = self._copies = None
        if len(self) <= _DICT_MAX:
            keys = {j: bytes(ids[j * 20 : j * 20 + 20]) for j in members}
            first: dict[bytes, int] = {}
            copies: dict[bytes, list[int]] = {}
            for j, key in keys.items():
                if key in first:
                    copies.setdefault(key, [first[key]]).append(j)
                else:
                    first[key] = j
            self._dict, self._copies = first, copies
            self._order = array("I", sorted(keys, key=keys.__getitem__))  # stable: pack order
            self._starts = array("I")
        else:

            def chosen() -> Iterable[int]:  # walked twice instead of copied (4 bytes each)
                everything = range(len(self))
                return everything if include is None else filter(include, everything)

            count = len(self) if include is None else sum(1 for _ in chosen())
            order = array("I", bytes(4 * count))
            bits = max(4, min(16, (count // 4).bit_length()))  # about four per bucket
            self._starts = _bucket(ids, order, 0, count, 0, bits, chosen)
            self._shift = 16 - bits
            self._order = order

    def find(self, sha: bytes) -> int:
        """Index of the (first copy of the) object *sha*, or -1; needs :meth:`sort`."""
        if self._dict is not None:
            return self._dict.get(sha, -1)
        at = self._position(sha)
        return -1 if at < 0 else self._order[at]

    def matches(self, sha: bytes) -> list[int]:
        """Indexes of every copy of *sha*, in pack order; needs :meth:`sort`."""
        if self._dict is not None and self._copies is not None:
            if sha in self._copies:
                return list(self._copies[sha])
            return [self._dict[sha]] if sha in self._dict else []
        at = self._position(sha)
        found: list[int] = []
        ids, order = self.ids, self._order
        while 0 <= at < len(order) and ids[order[at] * 20 : order[at] * 20 + 20] == sha:
            found.append(order[at])
            at += 1
        return found

    def _position(self, sha: bytes) -> int:
        """Where the first copy of *sha* sits in the sorted order, or -1 (buckets only)."""
        if not self._starts:
            return -1
        bucket = (sha[0] << 8 | sha[1]) >> self._shift
        lo, hi = self._starts[bucket], self._starts[bucket + 1]
        ids, order = self.ids, self._order
        while lo < hi:
            mid = (lo + hi) // 2
            j = order[mid]
            if ids[j * 20 : j * 20 + 20] < sha:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._starts[bucket + 1]:
            j = order[lo]
            if ids[j * 20 : j * 20 + 20] == sha:
                return lo
        return -1

    def unique(self) -> Iterator[int]:
        """Each distinct object once (its first copy), in id order; needs :meth:`sort`."""
        ids = self.ids
        previous = None
        for j in self._order:
            sha = ids[j * 20 : j * 20 + 20]
            if sha != previous:
                previous = sha
                yield j

    def duplicate(self) -> bytes | None:
        """The id of an object held twice, if any (``git index-pack --strict`` refuses those,
        and ``git verify-pack`` reports them); needs :meth:`sort`."""
        ids = self.ids
        previous = None
        for j in self._order:
            sha = ids[j * 20 : j * 20 + 20]
            if sha == previous:
                return bytes(sha)
            previous = sha
        return None

    def index(self, out: BinaryIO, pack_checksum: bytes) -> None:
        """Write a version 2 pack index, as ``git index-pack`` does (objects held once).

        Each table is written as it is produced, so the index costs no more memory than the
        order it is written in.
        """
        hasher = hashlib.sha1()

        def emit(chunk: bytes) -> None:
            out.write(chunk)
            hasher.update(chunk)

        chosen, ids = self._order, self.ids
        fanout = [0] * 256
        for j in chosen:
            fanout[ids[j * 20]] += 1
        emit(b"\377tOc\0\0\0\2")
        emit(struct.pack(">256I", *itertools.accumulate(fanout)))
        # Each table in batches, built in arrays and bytearrays: a Python object per entry
        # (a tuple for struct.pack, a list for join) would cost ~100 bytes each at once.
        for part in _batches(chosen):
            names = bytearray()
            for j in part:
                names += ids[j * 20 : j * 20 + 20]
            emit(bytes(names))
        for part in _batches(chosen):
            emit(_big_endian(array("I", (self.crcs[j] for j in part))))
        large = array("Q")
        for part in _batches(chosen):
            offsets = array("I")
            for j in part:
                offset = self.offsets[j]
                if offset < _LARGE_OFFSET:
                    offsets.append(offset)
                else:
                    offsets.append(_LARGE_OFFSET | len(large))
                    large.append(offset)
            emit(_big_endian(offsets))
        emit(_big_endian(large))
        emit(pack_checksum)
        out.write(hasher.digest())


def _bucket(
    ids: bytearray,
    order: array[int],
    lo: int,
    hi: int,
    depth: int,
    bits: int,
    source: Callable[[], Iterable[int]] | None = None,
) -> array[int]:
    """Sort ``order[lo:hi]`` by id, counting-sorting on *bits* bits from byte *depth* first.

    *source* gives the members instead of ``order[lo:hi]`` (the whole table: not copied).

    Returns the bucket starts (relative to *lo*). A bucket still large after that is sorted
    the same way on the next two bytes: ids are hashes, so only a sender who searched for
    shared prefixes can make one large, and each further level multiplies that search by
    65,536, while a comparison sort of a huge bucket would cost a Python object per member.
    """
    shift = 16 - bits
    counts = array("I", bytes(4 * ((1 << bits) + 1)))
    members = source() if source is not None else order[lo:hi]

    def key(j: int) -> int:
        at = j * 20 + depth
        return (ids[at] << 8 | ids[at + 1]) >> shift

    for j in members:
        counts[key(j) + 1] += 1
    starts = array("I", itertools.accumulate(counts))
    fill = array("I", starts)
    if source is not None:
        members = source()
    for j in members:
        bucket = key(j)
        order[lo + fill[bucket]] = j
        fill[bucket] += 1
    del members, fill
    after = depth + bits // 8  # bytes every member of one bucket shares
    for bucket in range(1 << bits):
        start, stop = lo + starts[bucket], lo + starts[bucket + 1]
        if stop - start <= 1:
            continue
        if stop - start <= _SMALL:
            span = sorted(order[start:stop], key=lambda j: (ids[j * 20 : j * 20 + 20], j))
            order[start:stop] = array("I", span)
        elif after < 20:
            _bucket(ids, order, start, stop, min(after, 18), 16)
        # else: every id in the bucket is the same object, already in pack order (stable)
    return starts


def _big_endian(values: array[int]) -> bytes:
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()


def _batches(items: array[int], size: int = 65536) -> Iterator[array[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
