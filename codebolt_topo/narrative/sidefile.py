"""Inflated content an import must read again, kept on disk instead of in memory.

The checks look inside trees and commits after the whole pack has been walked (a tree may name
objects that come later), delta resolution needs its bases, and the link rule needs the targets
of symlinks, which are small blobs. Keeping all of that in memory would make an import's memory
grow with the pack; here it is appended to one temporary file, read back by offset, and removed
with the import.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from typing import Self

__all__ = ["SideFile"]

_BUFFER = 1024 * 1024
_RECENT = 2 * 1024 * 1024
"""Bytes of recently put small items kept in memory as well."""
_RECENT_ITEM = 65536
_OVERHEAD = 160
"""What one remembered item costs beyond its bytes (the bytes object, its key, the link)."""


class SideFile:
    """An append-only temporary file in *directory*: :meth:`put` content, :meth:`read` it back."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="tmp_side_")
        os.unlink(name)  # nothing to clean up, whatever happens to this process
        self._file = os.fdopen(fd, "w+b", buffering=_BUFFER)
        self._fd = fd
        self.size = 0
        self._flushed = 0
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        self._recent_bytes = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def put(self, data: bytes | memoryview) -> int:
        """Append *data*; returns its offset.

        Small items stay in memory too, the latest :data:`_RECENT` bytes of them: resolving
        a delta chain reads back what was just written, and a flush plus a read per object
        cost more than the resolution itself.
        """
        at = self.size
        self._file.write(data)
        self.size += len(data)
        if len(data) <= _RECENT_ITEM:
            self._recent[at] = bytes(data)
            self._recent_bytes += len(data) + _OVERHEAD
            while self._recent_bytes > _RECENT:  # oldest first; O(1), unlike a dict's
                self._recent_bytes -= len(self._recent.popitem(last=False)[1]) + _OVERHEAD
        return at

    def write(self, data: bytes | memoryview) -> None:
        """Append *data* to the item being written in pieces (it starts at :attr:`size`)."""
        self._file.write(data)
        self.size += len(data)

    def drop(self, offset: int) -> None:
        """Take back everything appended from *offset* on."""
        self._file.flush()
        self._file.truncate(offset)
        self._file.seek(offset)
        self.size = self._flushed = offset
        for at in [at for at in self._recent if at >= offset]:
            self._recent_bytes -= len(self._recent.pop(at)) + _OVERHEAD

    def read(self, offset: int, size: int) -> bytes:
        """*size* bytes from *offset* (raises :class:`EOFError` past the end)."""
        recent = self._recent.get(offset)
        if recent is not None and len(recent) == size:
            return recent
        if offset + size > self._flushed:
            self._file.flush()
            self._flushed = self.size
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise EOFError(f"side file holds {self.size} bytes, not {offset + size}")
        return data
