"""Bounded reads of a received file: a sliding buffer instead of the whole file in memory.

A received pack may be as large as :attr:`Limits.max_archive_bytes`; the readers walk it from
start to end, so one buffer of a MiB that moves forward (and is reloaded on the rare step
back, such as re-reading a delta) keeps an import's memory independent of the pack's size.
"""

from __future__ import annotations

import os
import zlib

__all__ = ["SPAN", "FileWindow"]

SPAN = 1024 * 1024
"""Bytes read at once; larger requests are served by a buffer of their own size."""


class FileWindow:
    """Read-only views of ``[pos, pos + n)`` of the open file *fd* of *size* bytes."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._start = self._stop = 0
        self._buf = memoryview(b"")

    def view(self, pos: int, n: int) -> memoryview:
        """Up to *n* bytes from *pos* (fewer at the end of the file; empty past it)."""
        start = self._start
        if start <= pos and (pos + n <= self._stop or self._stop >= self.size):
            return self._buf[pos - start : pos - start + n]
        data = os.pread(self.fd, max(SPAN, n), pos) if pos < self.size else b""
        self._start, self._stop, self._buf = pos, pos + len(data), memoryview(data)
        return self._buf[:n]

    def crc32(self, start: int, end: int) -> int:
        """CRC-32 of ``[start, end)`` (what a pack index records per object)."""
        crc, pos = 0, start
        while pos < end:
            chunk = self.view(pos, min(SPAN, end - pos))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        return crc
