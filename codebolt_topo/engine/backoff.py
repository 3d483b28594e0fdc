"""Capped exponential backoff per node (pure).

One node that never starts must not starve the others: each node waits on its own schedule
(1 s, 2 s, 4 s … up to a cap) and a pass of the reconciler only touches the nodes whose wait is
over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Backoff", "BackoffTable"]


@dataclass(slots=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    failures: int = 0
    next_try: float = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; returns the delay before the next attempt."""
        self.failures += 1
        delay: float = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        self.next_try = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_try = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_try


@dataclass
class BackoffTable:
    base: float = 1.0
    cap: float = 60.0
    entries: dict[str, Backoff] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Backoff:
        if name not in self.entries:
            self.entries[name] = Backoff(base=self.base, cap=self.cap)
        return self.entries[name]

    def ready(self, name: str, now: float) -> bool:
        return name not in self.entries or self.entries[name].ready(now)
