"""Data frames: a 13-byte header (``!BIQ``: stream, channel, offset), then the payload.

The payload is never copied on decode (a ``memoryview``) and copied once on encode; a
forwarding hop that keeps the channel relays the very frame it received (:func:`rechannel`).
"""

from __future__ import annotations

import struct
from typing import Final

from codebolt_topo.errors import ProtocolError

__all__ = [
    "CHUNK_SIZE",
    "HEADER",
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "STREAM_NAMES",
    "WRITE_LIMIT",
    "pack_data",
    "rechannel",
    "unpack_data",
]

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
STREAM_NAMES: Final = ("stdin", "stdout", "stderr")
HEADER: Final = struct.Struct("!BIQ")
HEADER_SIZE: Final = HEADER.size
CHUNK_SIZE: Final = 256 * 1024
"""Largest payload an executor or client puts in one data frame."""
MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024
"""Largest frame a connection accepts: room for big ``configure`` pushes and env blocks."""
WRITE_LIMIT: Final = 1024 * 1024
"""Bytes a connection may queue in its transport before ``send`` waits for the socket: a few
frames, so a hop relays the next frame while the kernel drains the last (bounded memory)."""


def pack_data(stream: int, ch: int, offset: int, *payload: bytes | memoryview) -> bytes:
    """One binary frame: header then the payload, given as one or more consecutive pieces (each
    copied once, into the frame)."""
    return b"".join((HEADER.pack(stream, ch, offset), *payload))


def unpack_data(frame: bytes) -> tuple[int, int, int, memoryview]:
    """Split a binary frame into (stream, ch, offset, payload view); the payload is not copied."""
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(f"data frame of {len(frame)} bytes is shorter than its header")
    stream, ch, offset = HEADER.unpack_from(frame)
    if stream > STDERR:
        raise ProtocolError(f"data frame names unknown stream {stream}")
    return stream, ch, offset, memoryview(frame)[HEADER_SIZE:]


def rechannel(frame: bytes, ch: int) -> bytes:
    """The same data frame on channel ``ch`` (what a forwarding hop sends upstream); the frame
    itself, not a copy, when it already is on ``ch`` (the common case of a chain: every hop's
    first channel is 1)."""
    stream, old, offset = HEADER.unpack_from(frame)
    if old == ch:
        return frame
    return b"".join((HEADER.pack(stream, ch, offset), memoryview(frame)[HEADER_SIZE:]))
