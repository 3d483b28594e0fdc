"""Per-connection bookkeeping both ends keep: channel numbers, which targets of a request are
still open, and a client's checks that one job's output arrives whole and once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Generic, TypeVar

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.frames import STDERR, STDOUT, STREAM_NAMES

__all__ = ["ChannelTable", "JobStream", "RequestTracker"]

_MAX_CH: Final = 0xFFFFFFFF

T = TypeVar("T")


class ChannelTable(Generic[T]):
    """Channel numbers of one connection, allocated by the side that answers requests.

    Numbers start at 1 and increase; after wrapping past 2**32-1 numbers still in use are skipped,
    so a live channel is never handed out twice.
    """

    __slots__ = ("_items", "_next")

    def __init__(self) -> None:
        self._items: dict[int, T] = {}
        self._next = 1

    def allocate(self, item: T) -> int:
        """Give ``item`` a fresh channel number and return it."""
        ch = self._next
        while ch in self._items:
            ch = ch % _MAX_CH + 1
        self._next = ch % _MAX_CH + 1
        self._items[ch] = item
        return ch

    def get(self, ch: int) -> T | None:
        """The item on ``ch``, or None when the channel is not (or no longer) allocated."""
        return self._items.get(ch)

    def release(self, ch: int) -> T | None:
        """Free ``ch``; returns what it held (None when already free)."""
        return self._items.pop(ch, None)

    def values(self) -> list[T]:
        """Snapshot of every live item."""
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class RequestTracker:
    """Which targets of one request are still open on one connection.

    A target ends with its ``exit`` or its ``error``; a request-wide error (node None) ends all.
    The request is done, and ``done`` must be sent, when no target is open.
    """

    __slots__ = ("_open", "targets")

    def __init__(self, targets: Iterable[str]) -> None:
        self.targets = list(dict.fromkeys(targets))
        self._open = set(self.targets)

    def end(self, node: str) -> bool:
        """Mark ``node`` ended; True when this call ended it (False: unknown or already ended)."""
        if node in self._open:
            self._open.discard(node)
            return True
        return False

    def end_all(self) -> list[str]:
        """End every open target; returns those it ended, in request order."""
        ended = [t for t in self.targets if t in self._open]
        self._open.clear()
        return ended

    def is_open(self, node: str) -> bool:
        """Whether ``node`` has not ended yet."""
        return node in self._open

    @property
    def open(self) -> list[str]:
        """Targets still running or not yet started, in request order."""
        return [t for t in self.targets if t in self._open]

    @property
    def done(self) -> bool:
        """True once every target has ended."""
        return not self._open


class JobStream:
    """Client-side checks for one job: contiguous output offsets and exactly one exit.

    Feed every data frame to :meth:`data` and the ``exit`` message to :meth:`exit`; both raise
    :class:`ProtocolError` on a gap, a duplicate, data after exit, a second exit, or final byte
    counts that disagree with what arrived.
    """

    __slots__ = ("exited", "node", "offsets")

    def __init__(self, node: str) -> None:
        self.node = node
        self.offsets = [0, 0, 0]
        self.exited = False

    def data(self, stream: int, offset: int, size: int) -> None:
        """Account for ``size`` bytes of ``stream`` starting at ``offset``."""
        if self.exited:
            raise ProtocolError(f"{self.node}: output after exit")
        expected = self.offsets[stream]
        if offset != expected:
            what = "gap" if offset > expected else "duplicate"
            raise ProtocolError(
                f"{self.node}: {what} in {STREAM_NAMES[stream]} (offset {offset}, "
                f"expected {expected})"
            )
        self.offsets[stream] = expected + size

    def exit(self, stdout_bytes: int | None, stderr_bytes: int | None) -> None:
        """Accept the job's exit; the final counts, when given, must match what arrived."""
        if self.exited:
            raise ProtocolError(f"{self.node}: second exit")
        self.exited = True
        for stream, final in ((STDOUT, stdout_bytes), (STDERR, stderr_bytes)):
            if final is not None and final != self.offsets[stream]:
                raise ProtocolError(
                    f"{self.node}: {STREAM_NAMES[stream]} ended at {self.offsets[stream]} bytes, "
                    f"exit says {final}"
                )
