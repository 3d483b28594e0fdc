"""Git trees from files that arrive one by one, in the order a tarball export writes them.

Export writes a snapshot's files depth first, names sorted within each directory, so a
directory's files are contiguous. :class:`TreeBuilder` therefore holds open only the
directories along the current path: when a file leaves a directory, that directory's tree is
final, is written into the pack, and becomes one entry of its parent. Memory is the current
path, not the snapshot; a directory's listing spills to a temporary file beyond
:data:`IN_MEMORY` bytes.

Git orders a tree's entries as if directory names ended with ``/`` (``a.b`` before the
directory ``a``), not as plain names sort; a finished directory waits in a small heap until
no later name can sort before it. Only names that extend it with a character below ``/`` can,
so the heap never holds more than the prefixes of one name.

Files arriving out of that order, twice, or under a name already used by a file are refused:
a tarball we did not write that way is refused with a clear error rather than rebuilt with
unbounded memory.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from typing import IO

from codebolt_topo.narrative.errors import CorruptDataError, UnsafeInputError
from codebolt_topo.narrative.incoming import PackWriter
from codebolt_topo.narrative.safety import MODE_DIR

__all__ = ["IN_MEMORY", "TreeBuilder"]

IN_MEMORY = 65536
"""A directory's listing is kept in memory up to this size, then spilled to disk."""

_TREE = 2
_PIECE = 1024 * 1024


class _Listing:
    """The raw entries of one open directory, in git order, spilling to a temporary file."""

    def __init__(self, name: bytes, spill_dir: str) -> None:
        self.name = name
        self._spill_dir = spill_dir
        self._buf = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0
        self._waiting: list[tuple[bytes, bytes]] = []  # (git sort key, raw entry) of dirs

    def add_file(self, name: bytes, mode: int, sha: bytes) -> None:
        while self._waiting and self._waiting[0][0] < name:
            self._write(heapq.heappop(self._waiting)[1])
        self._write(b"%o %b\0%b" % (mode, name, sha))

    def add_dir(self, name: bytes, sha: bytes) -> None:
        heapq.heappush(self._waiting, (name + b"/", b"%o %b\0%b" % (MODE_DIR, name, sha)))

    def seal(self) -> None:
        """Write the directories still waiting: the listing is complete, :attr:`size` final."""
        while self._waiting:
            self._write(heapq.heappop(self._waiting)[1])

    def pieces(self) -> Iterator[bytes]:
        """The whole listing (call once, after :meth:`seal`)."""
        if self._file is None:
            yield bytes(self._buf)
            return
        self._file.write(self._buf)
        self._file.flush()
        self._file.seek(0)
        while piece := self._file.read(_PIECE):
            yield piece
        self._file.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _write(self, entry: bytes) -> None:
        self.size += len(entry)
        self._buf += entry
        if len(self._buf) > IN_MEMORY:
            if self._file is None:
                # Unnamed, closed with the listing (or the builder): no context to manage it.
                self._file = tempfile.TemporaryFile(dir=self._spill_dir)  # noqa: SIM115
            self._file.write(self._buf)
            self._buf.clear()


class TreeBuilder:
    """Build the trees of files added in export order (see the module docstring)."""

    def __init__(self, writer: PackWriter) -> None:
        self.writer = writer
        self._spill_dir = writer.incoming.pack_dir
        self._open = [_Listing(b"", self._spill_dir)]
        self._last: list[bytes] | None = None

    def add(self, parts: list[bytes], mode: int, sha: bytes) -> None:
        """Add the file at path *parts* (checked components) with *mode* and blob id *sha*."""
        last = self._last
        if last is not None:
            if parts <= last:
                raise UnsafeInputError(
                    f"member {b'/'.join(parts)!r} comes out of order or twice (a snapshot "
                    "tarball lists its files depth first, names sorted, as export writes them)"
                )
            if parts[: len(last)] == last:
                raise CorruptDataError(f"{b'/'.join(parts)!r} lies under a file")
        dirs = parts[:-1]
        shared = 0
        while shared < len(dirs) and shared + 1 < len(self._open):
            if self._open[shared + 1].name != dirs[shared]:
                break
            shared += 1
        while len(self._open) > shared + 1:
            self._close_last()
        for name in dirs[shared:]:
            self._open.append(_Listing(name, self._spill_dir))
        self._open[-1].add_file(parts[-1], mode, sha)
        self._last = parts

    def finish(self) -> bytes:
        """Close every directory; returns the root tree's binary id."""
        while len(self._open) > 1:
            self._close_last()
        _index, sha = self._write(self._open.pop())
        return sha

    def close(self) -> None:
        for listing in self._open:
            listing.close()

    def _close_last(self) -> None:
        listing = self._open.pop()
        _index, sha = self._write(listing)
        self._open[-1].add_dir(listing.name, sha)

    def _write(self, listing: _Listing) -> tuple[int, bytes]:
        listing.seal()
        index, sha = self.writer.add_stream(_TREE, listing.size, listing.pieces(), keep=True)
        if self.writer.written(sha):  # the same directory content seen elsewhere
            self.writer.take_back(index)
        return index, sha
