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

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.heartbeat import LEFT, HeartbeatProber
from codebolt_topo.engine.joined_nodes import joined_and_placed, shown_handle
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.validate import ValidatedTopology, validate_file
from codebolt_topo.providers.base import Provider, ProviderContext
from codebolt_topo.providers.registry import load_provider

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
    where: str = ""
    """Where the node runs now, as its provider sees it (a swarm task's machine), or ""."""

    @property
    def shown_state(self) -> str:
        if not self.alive:
            return f"FAILED ({self.reason})"
        if self.heartbeat_error:
            return f"{self.lifecycle}, not answering ({self.heartbeat_error})"
        return self.lifecycle

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "lifecycle": self.lifecycle,
            "since": self.since,
            "alive": self.alive,
            "reason": self.reason,
            "url": self.url,
            "handle": self.handle,
            "heartbeat_ms": self.heartbeat_ms,
            "heartbeat_error": self.heartbeat_error,
            "hops": self.hops,
            "last_heartbeat": self.last_heartbeat,
            "where": self.where,
        }


async def _observe(state_file: StateBackend, state: State) -> dict[str, Observation]:
    """What each node's provider sees of it, as ``Engine.refresh`` asks (the engine itself, with
    apply's and destroy's imports, is not needed to look: 35-55 ms of a cold ``status``)."""
    providers: dict[str, Provider] = {}

    async def observe(node: NodeState) -> Observation:
        if not node.handle:
            return Observation(alive=False, reason=f"never started ({node.lifecycle})")
        if node.provider not in providers:
            context = ProviderContext(
                topology=state.topology,
                lineage=state.lineage,
                runtime_dir=state_file.runtime_dir,
                base_dir=state_file.directory.parent,
            )
            providers[node.provider] = load_provider(node.provider)(context)
        return await providers[node.provider].inspect(node.handle)

    names = list(state.nodes)
    results = await asyncio.gather(*(observe(state.nodes[n]) for n in names))
    return dict(zip(names, results, strict=True))


class StatusCollector:
    """Collects :class:`NodeStatus` rows; keep one for ``--watch`` so connections are reused."""

    def __init__(
        self, path: Path, *, heartbeat_timeout: float = 2.0, one_shot: bool = False
    ) -> None:
        """``one_shot``: a single pass (a plain ``status``), whose heartbeats keep nothing open
        (``engine/heartbeat.py``)."""
        self.path = path
        self.timeout = heartbeat_timeout
        self.prober = HeartbeatProber(one_shot=one_shot)
        self._validated: ValidatedTopology | None = None
        self._answered: dict[tuple[str, str | None], float] = {}

    async def collect(self) -> tuple[State, list[NodeStatus]]:
        validated = self._validated = validate_file(self.path)
        state_file = backend_for(self.path, validated.topology)
        state = state_file.load(sealed_ok=True)  # status shows what it can without the key
        observed = await _observe(state_file, state)
        names = [n for n in state.nodes if observed[n].alive]

        async def beat(name: str) -> tuple[float | None, str]:
            node = state.nodes[name]
            if joined_and_placed(node):
                return await self._joined_beat(validated, state, name)
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
            lifecycle = node.lifecycle.value
            if error.startswith(LEFT):  # a joined node that left: stopped, not failing
                lifecycle, error = f"STOPPED ({error})", ""
            elif joined_and_placed(node) and latency is not None:
                lifecycle = "RUNNING"  # back: what its neighbours see now, before watch records it
            key = (name, node.url)  # a replacement starts with no record
            if latency is not None:
                self._answered[key] = time.time()
            rows.append(
                NodeStatus(
                    name=name,
                    provider=node.provider,
                    lifecycle=lifecycle,
                    since=node.history[-1].at if node.history else None,
                    url=node.url,
                    handle=shown_handle(node.handle),
                    alive=observed[name].alive,
                    reason=observed[name].reason,
                    heartbeat_ms=latency,
                    heartbeat_error=error,
                    hops=self._hops(validated, entries, name),
                    last_heartbeat=self._answered.get(key),
                    where=observed[name].where,
                )
            )
        return state, rows

    async def _joined_beat(
        self, validated: ValidatedTopology, state: State, name: str
    ) -> tuple[float | None, str]:
        """A joined node's heartbeat, taken by its neighbours (engine/heartbeat.py)."""
        graph = validated.graph
        neighbours = sorted({*graph.successors(name), *graph.predecessors(name)})
        beat = await self.prober.joined(state, name, neighbours, self.timeout)
        return beat.rtt_ms, beat.problem(name)

    @staticmethod
    def _hops(validated: ValidatedTopology, entries: list[str], name: str) -> int | None:
        if name not in validated.topology.nodes:
            return None
        counts = [validated.graph.hops(entry, name) for entry in entries]
        known = [c for c in counts if c is not None]
        return min(known) if known else None

    async def close(self) -> None:
        await self.prober.close()
