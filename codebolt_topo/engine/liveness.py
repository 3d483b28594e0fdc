"""Heartbeat bookkeeping (pure): from beats received to HEALTHY, SUSPECT or FAILED.

The monitor that sends heartbeats and the reconciler that acts on failures both read this one
verdict, so "when is a node dead" is decided in exactly one place and can be tested with a fake
clock. A missed beat is not a failure: silence must outlast ``suspect_deadline`` to make a node
suspect, and ``fail_deadline`` to make it failed. A process that the provider reports gone is
failed at once: there is nothing to wait for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from codebolt_topo.model.health import HeartbeatSpec

__all__ = ["Health", "HealthTracker", "NodeHealth"]


class Health(StrEnum):
    HEALTHY = "healthy"
    SUSPECT = "suspect"
    FAILED = "failed"


@dataclass(slots=True)
class NodeHealth:
    """What is known about one node's liveness."""

    spec: HeartbeatSpec
    since: float
    last_beat: float | None = None
    last_error: str = ""
    gone: str = ""
    last_attempt: float | None = None
    beats: int = 0
    misses: int = 0

    def verdict(self, now: float) -> Health:
        if self.gone:
            return Health.FAILED
        if self.misses == 0:
            # Silence only counts against a node that was asked and did not answer: a slow
            # reconciler (a loaded laptop) must not turn its own delay into a node's failure.
            return Health.HEALTHY
        silent = now - (self.last_beat if self.last_beat is not None else self.since)
        if silent >= self.spec.fail_deadline:
            return Health.FAILED
        if silent >= self.spec.suspect_deadline:
            return Health.SUSPECT
        return Health.HEALTHY

    @property
    def reason(self) -> str:
        if self.gone:
            return self.gone
        detail = f": {self.last_error}" if self.last_error else ""
        return f"no heartbeat for {self.misses} interval(s){detail}"


@dataclass
class HealthTracker:
    """Liveness of every node, fed by the heartbeat monitor."""

    default: HeartbeatSpec
    nodes: dict[str, NodeHealth] = field(default_factory=dict)

    def track(self, name: str, now: float, spec: HeartbeatSpec | None = None) -> NodeHealth:
        """Start (or restart, after a replacement) watching ``name`` from ``now``."""
        self.nodes[name] = NodeHealth(spec=spec or self.default, since=now)
        return self.nodes[name]

    def forget(self, name: str) -> None:
        self.nodes.pop(name, None)

    def beat(self, name: str, now: float) -> None:
        health = self.nodes[name]
        health.last_beat = now
        health.beats += 1
        health.misses = 0
        health.last_error = ""

    def miss(self, name: str, error: str) -> None:
        health = self.nodes[name]
        health.misses += 1
        health.last_error = error

    def gone(self, name: str, reason: str) -> None:
        self.nodes[name].gone = reason

    def verdicts(self, now: float) -> dict[str, Health]:
        return {name: health.verdict(now) for name, health in self.nodes.items()}

    def due(self, name: str, now: float) -> bool:
        """Whether a heartbeat should be sent to ``name`` now (one per interval)."""
        health = self.nodes[name]
        if health.last_attempt is None:
            return True
        return now - health.last_attempt >= health.spec.interval

    def attempt(self, name: str, now: float) -> None:
        self.nodes[name].last_attempt = now
