"""Why each node moved: a journal of lifecycle events with their reasons.

The state file records where each node is (``history``: each state and when, the last 20) but
not why; the error ``apply`` printed when a node failed to start is gone once the terminal
scrolls. Like ``kubectl describe``'s Events, the engine appends one JSON line per event (a node
starting, running, failing to start with its error, configured, observed dead, stopped) to
``.codebolt/<topology>/events.jsonl``, and ``codebolt describe`` reads it back.

Appends are single ``write`` calls on an ``O_APPEND`` descriptor, so the writers (apply, watch,
destroy: all under the state lock anyway) never interleave a line. The file is kept under
:data:`MAX_BYTES` by rewriting it with its newest half when it grows past that. Mode 0600: a
start error may quote an address or a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_BYTES", "Event", "EventJournal"]

MAX_BYTES = 1 << 20
"""Size past which the journal drops its oldest half."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a node: ``kind`` is a short verb, ``message`` says why."""

    at: float
    node: str
    kind: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "node": self.node, "kind": self.kind, "message": self.message}


class EventJournal:
    """The events of one topology instance, in ``runtime_dir/events.jsonl``."""

    def __init__(self, runtime_dir: Path) -> None:
        self.path = runtime_dir / "events.jsonl"

    def record(self, node: str, kind: str, message: str = "") -> Event:
        """Append one event; a journal that cannot be written never fails the operation."""
        event = Event(at=time.time(), node=node, kind=kind, message=message)
        line = json.dumps(event.as_json(), separators=(",", ":")).encode() + b"\n"
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > MAX_BYTES:
                self._trim()
        return event

    def read(self, node: str | None = None) -> list[Event]:
        """Every recorded event (of ``node`` only when given), oldest first."""
        try:
            raw = self.path.read_bytes()
        except OSError:
            return []
        events = []
        for line in raw.splitlines():
            try:
                item = json.loads(line)
                event = Event(
                    float(item["at"]),
                    str(item["node"]),
                    str(item["kind"]),
                    str(item.get("message", "")),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash: skip it, keep the rest
            if node is None or event.node == node:
                events.append(event)
        return events

    def last(self, node: str, kind: str) -> Event | None:
        """The newest event of ``kind`` for ``node`` (e.g. its last start error)."""
        return next((e for e in reversed(self.read(node)) if e.kind == kind), None)

    def _trim(self) -> None:
        from codebolt_topo.engine.statefile import atomic_write

        raw = self.path.read_bytes()
        keep = raw[len(raw) // 2 :]
        keep = keep[keep.find(b"\n") + 1 :]  # start at a whole line
        atomic_write(self.path, keep)
