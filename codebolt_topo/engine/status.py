"""What ``codebolt status`` shows: recorded lifecycle, what providers see, and a live heartbeat.

One collection pass reads the state, asks each provider whether each node is alive, and sends
each running node a heartbeat (``info``) to time its answer. ``status --watch`` repeats the pass
with the same heartbeat connections, and remembers when each node last answered: a node that
stops answering shows how long it has been silent, which is what tells a hang from a blip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.runner import Engine
from codebolt_topo.model.state import Lifecycle, State
from codebolt_topo.plan.validate import ValidatedTopology, validate_file

__all__ = ["NodeStatus", "StatusCollector"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    provider: str
    lifecycle: str
    since: float | None
    url: str | None
    handle: dict[str, Any]
    alive: bool
    reason: str
    heartbeat_ms: float | None
    heartbeat_error: str
    hops: int | None
    last_heartbeat: float | None = None
    """Wall-clock time of the last answered heartbeat this collector saw (None: never)."""

    @property
    def shown_state(self) -> str:
        if not self.alive:
            return f"FAILED ({self.reason})"
        if self.heartbeat_error:
            return f"{self.lifecycle}, not answering ({self.heartbeat_error})"
        return self.lifecycle

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "provider": self.provider, "lifecycle": self.lifecycle,
            "since": self.since, "alive": self.alive, "reason": self.reason, "url": self.url,
            "handle": self.handle, "heartbeat_ms": self.heartbeat_ms,
            "heartbeat_error": self.heartbeat_error, "hops": self.hops,
            "last_heartbeat": self.last_heartbeat,
        }


class StatusCollector:
    """Collects :class:`NodeStatus` rows; keep one for ``--watch`` so connections are reused."""

    def __init__(self, path: Path, *, heartbeat_timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = heartbeat_timeout
        self.prober = HeartbeatProber()
        self._validated: ValidatedTopology | None = None
        self._answered: dict[tuple[str, str | None], float] = {}

    async def collect(self) -> tuple[State, list[NodeStatus]]:
        validated = self._validated = validate_file(self.path)
        state_file = state_file_for(self.path, validated.topology.name)
        state = state_file.load()
        observed = await Engine(state_file).refresh(state)
        names = [n for n in state.nodes if observed[n].alive]

        async def beat(name: str) -> tuple[float | None, str]:
            node = state.nodes[name]
            if node.lifecycle is not Lifecycle.RUNNING:
                return None, ""
            start = time.perf_counter()
            error = await self.prober.probe(node, self.timeout)
            return ((time.perf_counter() - start) * 1e3, "") if error is None else (None, error)

        beats = dict(zip(names, await asyncio.gather(*(beat(n) for n in names)), strict=True))
        entries = validated.graph.entries()
        rows = []
        for name, node in state.nodes.items():
            latency, error = beats.get(name, (None, ""))
            key = (name, node.url)  # a replacement starts with no record
            if latency is not None:
                self._answered[key] = time.time()
            rows.append(NodeStatus(
                name=name, provider=node.provider, lifecycle=node.lifecycle.value,
                since=node.history[-1].at if node.history else None, url=node.url,
                handle=node.handle, alive=observed[name].alive, reason=observed[name].reason,
                heartbeat_ms=latency, heartbeat_error=error,
                hops=self._hops(validated, entries, name),
                last_heartbeat=self._answered.get(key),
            ))
        return state, rows

    @staticmethod
    def _hops(validated: ValidatedTopology, entries: list[str], name: str) -> int | None:
        if name not in validated.topology.nodes:
            return None
        counts = [validated.graph.hops(entry, name) for entry in entries]
        known = [c for c in counts if c is not None]
        return min(known) if known else None

    async def close(self) -> None:
        await self.prober.close()
