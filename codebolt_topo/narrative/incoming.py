"""What an import received, kept on disk until every check has passed, then installed.

Both formats end up here: a bundle's pack is copied as it arrives into a temporary file of the
store's pack directory (:mod:`~codebolt_topo.narrative.receive` walks it), a tarball's members
are written into one as they are read (:class:`PackWriter`). Beside the pack: its
:class:`~codebolt_topo.narrative.objtable.ObjectTable` and a
:class:`~codebolt_topo.narrative.sidefile.SideFile` with the inflated content the checks read
again (trees, commits, small blobs that may be symlink targets, delta bases).

:meth:`Incoming.install` makes the pack visible the way ``git index-pack`` does: a thin pack
gets the bases it borrowed from the store appended (a pack on disk must be self-contained), the
index is written, the pack renamed into place and its index last. Until then nothing is
visible, and :meth:`Incoming.close` removes every temporary file, so a refused import leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Self

from codebolt_topo.narrative.limits import Limits
from codebolt_topo.narrative.objtable import ObjectTable
from codebolt_topo.narrative.packs import object_header
from codebolt_topo.narrative.sidefile import SideFile
from codebolt_topo.narrative.trees import Entry, iter_tree

__all__ = ["KEEP_BLOBS", "TYPE_NAMES", "Incoming", "PackWriter"]

KEEP_BLOBS = 4096
"""Blobs up to this size are kept beside the pack: they may be symlink targets (PATH_MAX)."""

TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_COPY = 1024 * 1024
_RECENT = 65536
_ONE_SHOT = 1024 * 1024


class Incoming:
    """A temporary pack in *pack_dir*, its table and kept content; see the module docstring."""

    def __init__(self, pack_dir: str | os.PathLike[str], limits: Limits) -> None:
        self.pack_dir = os.fspath(pack_dir)
        self.limits = limits
        fd, self.path = tempfile.mkstemp(dir=self.pack_dir, prefix="tmp_pack_")
        self.file = os.fdopen(fd, "w+b")
        self.fd = fd
        self.side = SideFile(self.pack_dir)
        self.table = ObjectTable(wide=_wide(limits))
        self.checksum = b""
        self.size = 0
        self.sent = 0
        """Objects the sender sent; the table's later entries are borrowed thin-pack bases."""
        self._installed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files and remove the temporary pack unless it was installed."""
        self.file.close()
        self.side.close()
        if not self._installed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def content(self, index: int) -> bytes:
        """The inflated content of object *index*, which must have been kept."""
        at = self.table.kept_at(index)
        if at < 0:
            raise KeyError(index)
        return self.side.read(at, self.table.sizes[index])

    def tree(self, index: int) -> Iterator[Entry]:
        """The entries of tree *index*, read from the side file in bounded chunks."""
        return iter_tree(
            self.side.read, self.table.kept_at(index), self.table.sizes[index], self.limits
        )

    def install(self) -> str:
        """Complete a thin pack, write the index, make both visible; returns the base path."""
        if len(self.table) > self.sent:
            self._append_borrowed()
        base = os.path.join(self.pack_dir, "pack-" + self.checksum.hex())
        self.file.flush()
        os.replace(self.path, base + ".pack")
        self._installed = True
        fd, tmp_idx = tempfile.mkstemp(dir=self.pack_dir, prefix="tmp_idx_")
        try:
            with os.fdopen(fd, "wb") as out:
                self.table.index(out, self.checksum)
            os.replace(tmp_idx, base + ".idx")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_idx)
            raise
        return base

    def _append_borrowed(self) -> None:
        """Append the thin pack's external bases as whole objects, like ``--fix-thin``.

        Offsets of the received objects do not move (the header keeps its size); only the
        object count and the trailing checksum change.
        """
        table = self.table
        self.file.seek(self.size - 20)
        self.file.truncate()
        at = self.size - 20
        for index in range(self.sent, len(table)):
            raw = self.content(index)
            record = object_header(table.types[index], len(raw)) + zlib.compress(raw, 1)
            self.file.write(record)
            table.offsets[index] = at
            table.crcs[index] = zlib.crc32(record)
            at += len(record)
        self.file.seek(8)
        self.file.write(len(table).to_bytes(4, "big"))
        self.file.flush()
        self.checksum = _digest(self.fd, at)
        os.pwrite(self.fd, self.checksum, at)
        self.size = at + 20


class PackWriter:
    """Write objects into *incoming*'s pack one by one, content streamed (tarball import)."""

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        self.file = incoming.file
        self.file.write(b"PACK\0\0\0\2\0\0\0\0")
        self.at = 12
        self._recent: dict[bytes, None] = {}

    def written(self, sha: bytes) -> bool:
        """Whether *sha* was written lately (a file with the same content as an earlier one).

        Remembers up to :data:`_RECENT` ids, so memory stays bounded; a repeat it forgot is
        dropped by :meth:`finish` instead.
        """
        if sha in self._recent:
            return True
        if len(self._recent) >= _RECENT:
            self._recent.clear()
        self._recent[sha] = None
        return False

    def add(self, type_num: int, data: bytes, *, keep: bool = True) -> tuple[int, bytes]:
        """Append one whole object from memory; returns its index and binary id."""
        return self.add_stream(type_num, len(data), (data,), keep=keep)

    def add_stream(
        self, type_num: int, size: int, chunks: Iterable[bytes], *, keep: bool = False
    ) -> tuple[int, bytes]:
        """Append one object of *size* bytes from *chunks*, hashing and compressing as it goes.

        Content is kept beside the pack when *keep* or when it is small enough to be a symlink
        target. Raises ValueError when the chunks do not add up to *size*.
        """
        incoming, side = self.incoming, self.incoming.side
        keep = keep or size <= KEEP_BLOBS
        kept_at = side.size if keep else -1
        head = object_header(type_num, size)
        prefix = TYPE_NAMES[type_num] + b" %d\0" % size
        if size <= _ONE_SHOT:  # most files: one compress call (a compressor costs ~256 KiB)
            data = b"".join(chunks)
            if len(data) != size:
                raise ValueError(f"object is {len(data)} bytes, not the {size} declared")
            record = head + zlib.compress(data, 1)
            self.file.write(record)
            if keep:
                side.write(data)
            start, self.at = self.at, self.at + len(record)
            sha = hashlib.sha1(prefix + data).digest()
            return incoming.table.append(
                start, type_num, size, sha, zlib.crc32(record), kept_at
            ), sha
        hasher = hashlib.sha1(prefix)
        compressor = zlib.compressobj(1)
        self.file.write(head)
        crc = zlib.crc32(head)
        produced = 0
        for chunk in chunks:
            produced += len(chunk)
            if produced > size:
                break
            hasher.update(chunk)
            if keep:
                side.write(chunk)
            packed = compressor.compress(chunk)
            crc = zlib.crc32(packed, crc)
            self.file.write(packed)
        if produced != size:
            raise ValueError(f"object is {produced} bytes, not the {size} declared")
        packed = compressor.flush()
        crc = zlib.crc32(packed, crc)
        self.file.write(packed)
        start, self.at = self.at, self.file.tell()
        sha = hasher.digest()
        index = incoming.table.append(start, type_num, size, sha, crc, kept_at)
        return index, sha

    def take_back(self, index: int) -> None:
        """Forget object *index* and every later one (their content was not needed)."""
        table = self.incoming.table
        self.at = table.offsets[index]
        kept = [table.kept_at(i) for i in range(index, len(table)) if table.kept_at(i) >= 0]
        self.file.seek(self.at)
        self.file.truncate()
        if kept:
            self.incoming.side.drop(min(kept))
        table.truncate(index)

    def finish(self) -> None:
        """Write the object count and the trailing checksum; sort the table for lookups.

        A repeated object :meth:`written` forgot is dropped here: git tools refuse a pack
        holding an object twice.
        """
        incoming = self.incoming
        incoming.table.sort()
        if incoming.table.duplicate() is not None:
            self._drop_repeats()
        self.file.seek(8)
        self.file.write(len(incoming.table).to_bytes(4, "big"))
        self.file.flush()
        incoming.checksum = _digest(incoming.fd, self.at)
        os.pwrite(incoming.fd, incoming.checksum, self.at)
        incoming.size = self.at + 20
        incoming.sent = len(incoming.table)
        incoming.table.sort()

    def _drop_repeats(self) -> None:
        """Rewrite the pack with every object once (ours holds no deltas to re-point)."""
        incoming, old = self.incoming, self.incoming.table
        incoming.file.flush()
        first = bytearray(len(old))
        for index in old.unique():
            first[index] = 1
        fd, path = tempfile.mkstemp(dir=incoming.pack_dir, prefix="tmp_pack_")
        out = os.fdopen(fd, "w+b")
        table, at = ObjectTable(wide=_wide(incoming.limits)), 12
        try:
            out.write(b"PACK\0\0\0\2\0\0\0\0")
            for index in range(len(old)):
                start = old.offsets[index]
                stop = old.offsets[index + 1] if index + 1 < len(old) else self.at
                if not first[index]:
                    continue
                out.write(os.pread(incoming.fd, stop - start, start))
                table.append(
                    at,
                    old.types[index],
                    old.sizes[index],
                    old.sha(index),
                    old.crcs[index],
                    old.kept_at(index),
                )
                at += stop - start
        except BaseException:
            out.close()
            os.unlink(path)
            raise
        incoming.file.close()
        os.unlink(incoming.path)
        incoming.file, incoming.fd, incoming.path, incoming.table = out, fd, path, table
        self.file, self.at = out, at
        table.sort()


def _wide(limits: Limits) -> bool:
    """Whether offsets (in the pack, in the side file) and sizes may pass four bytes."""
    return max(limits.max_archive_bytes, limits.max_unpacked_bytes) >= 0xFFFFFFFE


def _digest(fd: int, size: int) -> bytes:
    """SHA-1 of the first *size* bytes of *fd*, read in bounded pieces."""
    hasher = hashlib.sha1()
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(_COPY, size - pos), pos)
        if not chunk:
            raise OSError(f"pack file shorter than {size} bytes")
        hasher.update(chunk)
        pos += len(chunk)
    return hasher.digest()
