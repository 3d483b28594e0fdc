"""Applying one git delta, in memory when it is small and as a stream when it is not.

A delta is two sizes (its base's, its result's) and then instructions: copy a range of the
base, or insert literal bytes. Small deltas go through dulwich's C ``apply_delta``. Larger ones
(any of base, delta or result over :data:`IN_MEMORY`) go through :class:`DeltaStream`, which is
fed the inflated delta piece by piece, reads only the base ranges it copies and hands the
result on as it is produced, so resolving even a 500 MiB object costs a few buffers; every
instruction is checked against the declared sizes before it is carried out.
"""

from __future__ import annotations

from collections.abc import Callable

from dulwich.errors import ApplyDeltaError
from dulwich.pack import apply_delta

from codebolt_topo.narrative.errors import CorruptDataError

__all__ = ["IN_MEMORY", "DeltaStream", "apply_in_memory", "delta_sizes"]

IN_MEMORY = 4 * 1024 * 1024
"""Largest base, delta or result applied in memory."""

_COPY_PIECE = 1024 * 1024
"""Largest base range read at once when copying."""


def delta_sizes(head: bytes) -> tuple[int, int, int]:
    """``(base size, result size, header length)`` from the first bytes of a delta."""
    base, value, shift = -1, 0, 0
    for at, byte in enumerate(head):
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                break
        elif base < 0:
            base, value, shift = value, 0, 0
        else:
            return base, value, at + 1
    raise CorruptDataError("malformed delta header in pack")


def apply_in_memory(base: bytes, delta: bytes, result_size: int) -> bytes:
    """The result of *delta* on *base*, which must be *result_size* bytes."""
    declared_base, declared_result, _ = delta_sizes(delta[:20])
    if declared_base != len(base) or declared_result != result_size:
        raise CorruptDataError("delta sizes do not match its base or its header")
    try:
        out = b"".join(apply_delta(base, delta))
    except (ApplyDeltaError, ValueError, IndexError, TypeError) as exc:
        raise CorruptDataError(f"bad delta: {exc}") from exc
    if len(out) != result_size:
        raise CorruptDataError("delta result size does not match its header")
    return out


class DeltaStream:
    """Apply a delta fed in pieces (:meth:`feed`), reading the base through *read_base*.

    The result goes to *sink* as it is produced; :meth:`finish` checks that the delta ended
    cleanly and produced exactly *result_size* bytes.
    """

    def __init__(
        self,
        read_base: Callable[[int, int], bytes],
        base_size: int,
        result_size: int,
        sink: Callable[[bytes], object],
    ) -> None:
        self._read = read_base
        self._base_size = base_size
        self._result_size = result_size
        self._sink = sink
        self._buf = b""
        self._header = False
        self.produced = 0

    def feed(self, data: bytes) -> None:
        """Carry out every complete instruction in what was fed so far."""
        buf = self._buf + data if self._buf else bytes(data)
        pos = 0
        if not self._header:
            if len(buf) < 20 and not _varints_complete(buf, 2):
                self._buf = buf
                return
            base, result, pos = delta_sizes(buf[:20])
            if base != self._base_size or result != self._result_size:
                raise CorruptDataError("delta sizes do not match its base or its header")
            self._header = True
        end = len(buf)
        while pos < end:
            op = buf[pos]
            if op & 0x80:
                need = 1 + bin(op & 0x7F).count("1")
                if pos + need > end:
                    break
                offset, size, at = 0, 0, pos + 1
                for bit in range(4):
                    if op & (1 << bit):
                        offset |= buf[at] << (8 * bit)
                        at += 1
                for bit in range(3):
                    if op & (16 << bit):
                        size |= buf[at] << (8 * bit)
                        at += 1
                size = size or 0x10000
                if offset + size > self._base_size:
                    raise CorruptDataError("delta copies beyond its base")
                self._emit_copy(offset, size)
                pos += need
            elif op:
                if pos + 1 + op > end:
                    break
                self._emit(buf[pos + 1 : pos + 1 + op])
                pos += 1 + op
            else:
                raise CorruptDataError("bad delta: invalid instruction 0")
        self._buf = buf[pos:]

    def finish(self) -> None:
        """Refuse a delta cut inside an instruction or producing the wrong size."""
        if self._buf or not self._header or self.produced != self._result_size:
            raise CorruptDataError("delta result size does not match its header")

    def _emit_copy(self, offset: int, size: int) -> None:
        while size:
            piece = min(size, _COPY_PIECE)
            self._emit(self._read(offset, piece))
            offset += piece
            size -= piece

    def _emit(self, data: bytes) -> None:
        self.produced += len(data)
        if self.produced > self._result_size:
            raise CorruptDataError("delta result exceeds its declared size")
        self._sink(data)


def _varints_complete(buf: bytes, count: int) -> bool:
    seen = 0
    for byte in buf:
        if not byte & 0x80:
            seen += 1
            if seen == count:
                return True
    return False
