"""node.log stays readable under a flood: the same message repeated is written a few times,
then summed up in one line.

A peer hammering a node with bad requests, or a node out of descriptors failing every accept,
used to write one line per event (75 MB a minute in issue 12). :class:`RepeatLimiter` is a
filter on the daemon's log handlers: per kind of record from warnings up (logger, level, message
template and an optional ``repeat_key`` given in ``extra``) it lets the first :data:`BURST`
through in each :data:`WINDOW` seconds and counts the rest; when the window closes (at the next
record of that kind, or when the daemon exits) it writes ``N more like this in the last S s:
<last one>``.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["BURST", "WINDOW", "RepeatLimiter", "install_log_limits"]

BURST: Final = 5
"""Records of one kind written in full per window."""
WINDOW: Final = 10.0
"""Seconds of one window."""
_SUMMARY = "%d more like this in the last %.0f s: %s"


class _Kind:
    __slots__ = ("last", "seen", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.seen = 0
        self.last: logging.LogRecord | None = None


class RepeatLimiter(logging.Filter):
    """Filter for ``handler``: the first ``burst`` records of a kind per ``window`` seconds pass,
    the rest are counted and summed up in one line written through ``handler``. Records below
    ``level`` (warnings: what floods is refusals and failures) all pass."""

    def __init__(
        self,
        handler: logging.Handler,
        burst: int = BURST,
        window: float = WINDOW,
        now: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._level = level
        self._burst = burst
        self._window = window
        self._now = now
        self._kinds: dict[tuple[object, ...], _Kind] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._level or getattr(record, "repeat_summary", False):
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template, getattr(record, "repeat_key", None))
        now = self._now()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.start >= self._window:
                self._summarize(kind, now)
                kind = None
            if kind is None:
                kind = self._kinds[key] = _Kind(now)
            kind.seen += 1
            if kind.seen <= self._burst:
                return True
            kind.last = record
            return False

    def flush(self) -> None:
        """Write the summary of every window that suppressed something (at exit)."""
        now = self._now()
        with self._lock:
            for kind in self._kinds.values():
                self._summarize(kind, now)
            self._kinds.clear()

    def _summarize(self, kind: _Kind, now: float) -> None:
        last = kind.last
        if last is None:
            return
        summary = logging.LogRecord(
            last.name,
            last.levelno,
            last.pathname,
            last.lineno,
            _SUMMARY,
            (kind.seen - self._burst, max(now - kind.start, 1.0), last.getMessage()),
            None,
        )
        summary.repeat_summary = True
        kind.last = None
        self._handler.handle(summary)


def install_log_limits(burst: int = BURST, window: float = WINDOW) -> None:
    """Put a :class:`RepeatLimiter` on each handler of the root logger (once) and sum up what
    they held back when the process exits. Call after logging is configured."""
    for handler in logging.getLogger().handlers:
        if any(isinstance(f, RepeatLimiter) for f in handler.filters):
            continue
        limiter = RepeatLimiter(handler, burst, window)
        handler.addFilter(limiter)
        atexit.register(limiter.flush)
