"""Flow control, sans I/O: the executing node's replay buffer and the caller's ack policy.

The executing node keeps, per job and stream, the bytes its callers have not acknowledged yet
(:class:`ReplayBuffer`). That one buffer serves two purposes: a caller that reconnects asks for
the rest from its last received offset (replay), and the job's producer stops reading the child's
pipe while the buffer holds a full window (backpressure per job, not per shared connection).

The caller acknowledges what its application consumed; :class:`AckPolicy` decides when an
``ack`` is worth a message: once half a window was consumed since the last one, so the producer
never starves and acks stay rare and asynchronous (never on the critical path of a short job).
"""

from __future__ import annotations

from typing import Final

from codebolt_topo.errors import ProtocolError
from codebolt_topo.node.protocol import CHUNK_SIZE, STDERR, STDOUT

__all__ = ["SEGMENT", "AckPolicy", "ReplayBuffer"]

SEGMENT: Final = CHUNK_SIZE
"""Bytes per storage segment; segments are aligned on absolute stream offsets."""


class ReplayBuffer:
    """Bytes ``[base, end)`` of one output stream.

    Storage is a list of bytearrays each covering one aligned :data:`SEGMENT` of the stream, so
    finding an offset is arithmetic and tiny writes coalesce instead of becoming tiny frames.
    :meth:`trim` drops whole segments; up to one segment below ``base`` may stay allocated.
    """

    __slots__ = ("_first", "_segments", "base", "end")

    def __init__(self) -> None:
        self._segments: list[bytearray] = []
        self._first = 0  # segment number (offset // SEGMENT) of _segments[0]
        self.base = 0
        self.end = 0

    @property
    def held(self) -> int:
        """Bytes held (not yet acknowledged by every reader)."""
        return self.end - self.base

    def append(self, data: bytes | memoryview) -> None:
        """Add ``data`` at ``end``."""
        view = memoryview(data)
        while view:
            room = SEGMENT - self.end % SEGMENT
            if room == SEGMENT or not self._segments:
                if not self._segments:
                    self._first = self.end // SEGMENT
                self._segments.append(bytearray())
            part = view[:room]
            self._segments[-1] += part
            self.end += len(part)
            view = view[len(part):]

    def read(self, offset: int, limit: int = CHUNK_SIZE) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (never across a segment boundary).

        Raises ProtocolError when ``offset`` is below ``base`` (trimmed) or beyond ``end``.
        """
        if offset < self.base or offset > self.end:
            raise ProtocolError(f"offset {offset} outside held range {self.base}..{self.end}")
        index = offset // SEGMENT - self._first
        if index >= len(self._segments):
            return b""
        segment = self._segments[index]
        start = offset % SEGMENT
        return bytes(segment[start:start + limit])

    def trim(self, offset: int) -> None:
        """Forget bytes below ``offset`` (every reader has them); stale offsets are ignored.

        Raises ProtocolError when ``offset`` is beyond ``end`` (acknowledging unsent bytes).
        """
        if offset > self.end:
            raise ProtocolError(f"ack of offset {offset} beyond the {self.end} bytes produced")
        if offset <= self.base:
            return
        self.base = offset
        drop = offset // SEGMENT - self._first
        if drop > 0:
            del self._segments[:drop]
            self._first += drop


class AckPolicy:
    """The caller's side of one job: consumed offsets and when to acknowledge them.

    ``window`` is what the executing node announced in ``started`` (None: it does not expect
    acks). :meth:`consume` returns True when an ack is due; :meth:`take` returns the offsets to
    send and marks them acknowledged.
    """

    __slots__ = ("acked", "consumed", "threshold")

    def __init__(self, window: int | None) -> None:
        self.threshold = max(1, window // 2) if window else None
        self.consumed = [0, 0, 0]
        self.acked = [0, 0, 0]

    def consume(self, stream: int, end: int) -> bool:
        """The application consumed ``stream`` up to ``end``; True when an ack is due."""
        if end > self.consumed[stream]:
            self.consumed[stream] = end
        return self.due

    @property
    def due(self) -> bool:
        """Whether enough was consumed since the last ack to send another."""
        if self.threshold is None:
            return False
        return any(self.consumed[s] - self.acked[s] >= self.threshold for s in (STDOUT, STDERR))

    def take(self) -> tuple[int, int]:
        """(stdout, stderr) offsets to acknowledge now."""
        self.acked = list(self.consumed)
        return self.consumed[STDOUT], self.consumed[STDERR]
