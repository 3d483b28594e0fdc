"""Requests that cannot be replayed: a node's request clock, a sender's estimate of it, and
the ids a node admitted (see "No replay" in ``docs/protocol.md``)."""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.handshake import CLOCK_HEADER

__all__ = ["CLOCK_REFRESH", "CLOCK_SKEW", "NodeClock", "PeerClock", "SeenRequests"]

CLOCK_REFRESH: Final = 300.0
"""Seconds after which a sender learns a node's clock again before stamping (an ``info``
round trip, once per five minutes of use): drift stays in milliseconds."""
CLOCK_SKEW: Final = 1.0
"""Seconds a stamp may lie ahead of the node's clock. A sender's estimate errs by the
handshake's one-way latency, and only ever towards older, so more is a forged stamp."""


class NodeClock:
    """This node's request clock: an epoch drawn when the daemon starts, and monotonic seconds
    since then.

    Every ``exec`` carries ``issued``, when it was issued, on the clock of the node receiving it
    (each sender learns the clock at the handshake, see :class:`PeerClock`). A stamp of another
    epoch, or before 0, was issued before this process started, so no frame captured earlier
    passes for a fresh one after a restart; the wall clock, which NTP may step, plays no part.
    """

    __slots__ = ("_now", "_start", "epoch")

    def __init__(self, now: Callable[[], float] = time.monotonic, epoch: str | None = None) -> None:
        self._now = now
        self._start = now()
        self.epoch = epoch or os.urandom(8).hex()

    def now(self) -> float:
        """Seconds since this clock started."""
        return self._now() - self._start

    def header(self) -> str:
        """The :data:`CLOCK_HEADER` value of a handshake answered now."""
        return f"{self.epoch} {self.now():.6f}"

    def age(self, issued: dict[str, Any] | None) -> float:
        """Seconds since an admitted request was issued (0 for no stamp or one ahead): what a
        forwarding hop carries over when it stamps the request for the next node."""
        return max(0.0, self.now() - issued["at"]) if issued else 0.0

    def refusal(
        self, node: str, request_id: str, issued: dict[str, Any] | None, ttl: float
    ) -> tuple[str, str] | None:
        """(code, message) when an ``exec`` stamped ``issued`` must not run here, else None:
        unstamped, issued before this node started, more than ``ttl`` seconds ago, or ahead."""
        if issued is None:
            return "bad-request", (
                f"node {node!r}: exec {request_id!r} carries no 'issued' stamp (on the clock "
                f"this node tells in the {CLOCK_HEADER} header of its handshake); unstamped "
                "requests could be replayed"
            )
        if issued["epoch"] != self.epoch or issued["at"] < 0:
            return "replayed", (
                f"node {node!r}: request {request_id!r} was issued before this node started; "
                "refused as a replay"
            )
        age = self.now() - issued["at"]
        if age > ttl:
            return "replayed", (
                f"node {node!r}: request {request_id!r} was issued {age:.1f} s ago, longer "
                f"than request_ttl ({ttl:g} s); refused as a replay"
            )
        if age < -CLOCK_SKEW:
            return "bad-request", (
                f"node {node!r}: request {request_id!r} is stamped {-age:.1f} s ahead of "
                "this node's clock"
            )
        return None


class PeerClock:
    """A peer's request clock as its handshake (or an ``info`` reply) told it: stamps the
    requests sent to it.

    The estimate lags the peer's clock by the one-way latency of the message that told it, so
    stamps err towards older, never towards fresher than they are. Two hosts' monotonic clocks
    drift apart (up to 100 ppm without NTP), so a link learns the clock again once its estimate
    is :data:`CLOCK_REFRESH` seconds old (see :meth:`older_than`).
    """

    __slots__ = ("_at", "_now", "_received", "epoch")

    def __init__(self, header: str, now: Callable[[], float] = time.monotonic) -> None:
        epoch, _, at = header.partition(" ")
        try:
            seconds = float(at)
        except ValueError:
            seconds = math.nan
        if not epoch or len(epoch) > 64 or not math.isfinite(seconds):
            raise ProtocolError(f"malformed {CLOCK_HEADER} header {header[:80]!r}")
        self.epoch = epoch
        self._at = seconds
        self._now = now
        self._received = now()

    def stamp(self, age: float = 0.0) -> dict[str, Any]:
        """``issued`` for a request sent now that was issued ``age`` seconds ago."""
        at = self._at + (self._now() - self._received) - age
        return {"epoch": self.epoch, "at": round(at, 6)}

    def older_than(self, seconds: float) -> bool:
        """Whether the estimate was learned more than ``seconds`` ago."""
        return self._now() - self._received > seconds


class SeenRequests:
    """Request ids this node admitted to run in the last ``ttl`` seconds.

    Kept apart from the job table, which forgets a job ``retention`` seconds after it ended
    and never holds one that failed to start: while a frame is fresh enough to pass
    :meth:`NodeClock.refusal`, its id is found here, so resending it never runs it again.
    """

    __slots__ = ("_now", "_until")

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._until: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; False when it is remembered already."""
        now = self._now()
        self._forget_expired(now)
        until = self._until.get(key)
        if until is not None and until > now:
            return False
        self._until[key] = now + ttl
        self._until.move_to_end(key)
        return True

    def _forget_expired(self, now: float) -> None:
        until = self._until
        while until:
            key, expiry = next(iter(until.items()))
            if expiry > now:
                return
            del until[key]

    def __len__(self) -> int:
        return len(self._until)
