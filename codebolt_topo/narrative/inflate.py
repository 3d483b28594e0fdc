"""Inflating one zlib stream of a pack in bounded steps, however the stream is built.

Every step asks zlib for at most :data:`FEED` bytes of output and feeds it at most :data:`FEED`
bytes of input, so memory stays bounded whatever the stream declares; output beyond the
object's declared size is refused as it appears, so a decompression bomb costs one step. The
loop ends at the stream's end and nowhere else: each step either consumes all its input or
fills its output, so it always progresses, and input past the end is given back as
``unused_data`` (CPython also leaves it in ``unconsumed_tail``, which is why a loop waiting for
that tail to empty never ended; issue 12, finding 1).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from codebolt_topo.narrative.errors import CorruptDataError
from codebolt_topo.narrative.window import FileWindow

__all__ = ["FEED", "inflate", "inflate_bytes"]

FEED = 65536
"""Bytes of input fed, and of output asked for, per step."""

Sink = Callable[[bytes], object]


def inflate(window: FileWindow, pos: int, end: int, size: int, sink: Sink | None) -> int:
    """Inflate the stream at *pos* (ending before *end*) of *size* bytes into *sink*.

    Returns the offset just after the stream. Raises :class:`CorruptDataError` when the
    stream is truncated, corrupt, or inflates to anything but *size* bytes.
    """
    inflater = zlib.decompressobj()
    if size < FEED:
        # Most objects are small: one call does, and anything unusual (a stream that needs
        # more input, a size mismatch, a zlib error) goes the careful way below.
        first = window.view(pos, min(end - pos, size + 64))
        try:
            out = inflater.decompress(first, size + 1)
        except zlib.error:
            out = b""
        if inflater.eof and len(out) == size:
            if sink is not None:
                sink(out)
            return pos + len(first) - len(inflater.unused_data)
        inflater = zlib.decompressobj()
    produced, fed = 0, pos
    pending: bytes | memoryview = window.view(pos, min(end - pos, FEED))
    fed += len(pending)
    try:
        while True:
            out = inflater.decompress(pending, FEED)
            produced += len(out)
            if produced > size:
                raise CorruptDataError("object inflates beyond its declared size")
            if sink is not None and out:
                sink(out)
            if inflater.eof:
                break
            pending = inflater.unconsumed_tail
            if not pending:
                if fed >= end:
                    raise CorruptDataError("pack truncated inside a zlib stream")
                pending = window.view(fed, min(end - fed, FEED))
                fed += len(pending)
    except zlib.error as exc:
        raise CorruptDataError(f"corrupt zlib stream in pack: {exc}") from exc
    if produced != size:
        raise CorruptDataError("object size does not match its header")
    return fed - len(inflater.unused_data)


def inflate_bytes(window: FileWindow, pos: int, end: int, size: int) -> tuple[bytes, int]:
    """:func:`inflate` into memory (for objects the caller has bounded): content, end offset."""
    chunks: list[bytes] = []
    after = inflate(window, pos, end, size, chunks.append)
    return b"".join(chunks), after
