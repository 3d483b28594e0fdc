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

from bisect import bisect_right
from typing import Final

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.frames import CHUNK_SIZE, STDERR, STDOUT

__all__ = ["COALESCE", "SEGMENT", "AckPolicy", "ReplayBuffer"]

SEGMENT: Final = CHUNK_SIZE
"""Most bytes :meth:`ReplayBuffer.read` returns at once (one data frame's payload)."""
COALESCE: Final = 16 * 1024
"""Appends that keep the last stored chunk under this size are merged into it, so a child that
writes line by line does not leave thousands of tiny objects behind."""


class ReplayBuffer:
    """Bytes ``[base, end)`` of one output stream.

    Storage is the list of chunks as appended (the ``bytes`` read from the pipe are kept, not
    copied); tiny appends are merged (:data:`COALESCE`). :meth:`pieces` hands out views of the
    stored chunks so that the one copy a frame needs (header + payload) is the only one.
    :meth:`trim` drops whole chunks; up to one chunk below ``base`` may stay allocated.
    """

    __slots__ = ("_chunks", "_head", "_starts", "base", "end")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._starts: list[int] = []  # absolute offset of each chunk's first byte
        self._head = 0  # first live chunk (the ones before it were trimmed)
        self.base = 0
        self.end = 0

    @property
    def held(self) -> int:
        """Bytes held (not yet acknowledged by every reader)."""
        return self.end - self.base

    def append(self, data: bytes | memoryview) -> None:
        """Add ``data`` at ``end`` (a ``bytes`` object is kept as is, not copied)."""
        size = len(data)
        if not size:
            return
        chunks = self._chunks
        if len(chunks) > self._head and len(chunks[-1]) + size <= COALESCE:
            chunks[-1] = chunks[-1] + data
        else:
            chunks.append(data if isinstance(data, bytes) else bytes(data))
            self._starts.append(self.end)
        self.end += size

    def pieces(self, offset: int, limit: int = CHUNK_SIZE) -> list[memoryview]:
        """Views of up to ``limit`` bytes from ``offset``, in order (empty at ``end``).

        The views stay valid after :meth:`trim` (they keep their chunk alive). Raises
        ProtocolError when ``offset`` is below ``base`` (trimmed) or beyond ``end``.
        """
        if offset < self.base or offset > self.end:
            raise ProtocolError(f"offset {offset} outside held range {self.base}..{self.end}")
        chunks, starts = self._chunks, self._starts
        index = bisect_right(starts, offset, self._head) - 1
        out: list[memoryview] = []
        while limit > 0 and offset < self.end:
            chunk = chunks[index]
            skip = offset - starts[index]
            piece = memoryview(chunk)[skip : skip + limit]
            out.append(piece)
            offset += len(piece)
            limit -= len(piece)
            index += 1
        return out

    def read(self, offset: int, limit: int = CHUNK_SIZE) -> bytes:
        """Up to ``limit`` bytes from ``offset`` as one ``bytes`` (see :meth:`pieces`)."""
        return b"".join(self.pieces(offset, limit))

    def trim(self, offset: int) -> None:
        """Forget bytes below ``offset`` (every reader has them); stale offsets are ignored.

        Raises ProtocolError when ``offset`` is beyond ``end`` (acknowledging unsent bytes).
        """
        if offset > self.end:
            raise ProtocolError(f"ack of offset {offset} beyond the {self.end} bytes produced")
        if offset <= self.base:
            return
        self.base = offset
        chunks, starts = self._chunks, self._starts
        head = self._head
        while head < len(chunks) and starts[head] + len(chunks[head]) <= offset:
            chunks[head] = b""
            head += 1
        if head > 64 and head * 2 > len(chunks):
            del chunks[:head], starts[:head]
            head = 0
        self._head = head


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
