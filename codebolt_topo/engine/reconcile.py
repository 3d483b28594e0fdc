"""The reconciler behind ``codebolt watch``: level-triggered passes that heal a topology.

Each pass compares the topology file with what it observes *now* (providers' view plus
heartbeats), never with the last event it saw, so a missed event cannot leave it confused. A
pass then applies what the file asks for, except that replacing a dead node obeys the node's
``restart:`` policy and its own capped exponential backoff. ``codebolt apply`` is one such pass
without the policy (the user asked for it explicitly).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from codebolt_topo.engine.backoff import BackoffTable
from codebolt_topo.engine.health import Health, HealthTracker
from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.runner import ApplyError, Engine
from codebolt_topo.engine.statefile import StateFile, state_dir_for
from codebolt_topo.errors import LockError, TopoError
from codebolt_topo.model.health import RestartPolicy
from codebolt_topo.model.state import Lifecycle, State
from codebolt_topo.plan.desired import DesiredNode, desired_nodes, stable_hash
from codebolt_topo.plan.diff import Action, ActionKind, Plan, diff
from codebolt_topo.plan.validate import ValidatedTopology, validate_file
from codebolt_topo.providers.base import Observation, Provider

__all__ = ["PassReport", "Reconciler"]


@dataclass
class PassReport:
    """What one pass saw and did."""

    health: dict[str, Health] = field(default_factory=dict)
    applied: list[Action] = field(default_factory=list)
    held_back: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class Reconciler:
    """Keeps the topology in ``path`` running; call :meth:`run` or :meth:`pass_once`."""

    def __init__(
        self,
        path: Path,
        *,
        report: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        lock_timeout: float = 10.0,
        providers: dict[str, Provider] | None = None,
        prober: HeartbeatProber | None = None,
        sync_interval: float | None = 60.0,
    ) -> None:
        self.path = path
        self.report = report
        self.clock = clock
        self.backoff = BackoffTable(base=backoff_base, cap=backoff_cap)
        self.prober = prober or HeartbeatProber()
        self.providers = providers if providers is not None else {}
        self.health: HealthTracker | None = None
        self.lock_timeout = lock_timeout
        self._incarnations: dict[str, str] = {}
        self._cache: tuple[bytes, ValidatedTopology] | None = None
        self.sync_interval = sync_interval
        self._last_sync = float("-inf")
        self._desired_cache: tuple[ValidatedTopology, dict[str, DesiredNode]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a broken file or a held lock skips a pass."""
        try:
            while not stop.is_set():
                tick = 1.0
                try:
                    validated = self._validated()
                    tick = self._tick(validated)
                    await self.pass_once(validated)
                    await self._sync_if_due(validated)
                except LockError as error:
                    self.report(f"pass skipped: {error}")
                except TopoError as error:
                    self.report(f"pass failed: {error}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            await self.prober.close()

    async def _sync_if_due(self, validated: ValidatedTopology) -> None:
        """Narrative sync along ``sync:`` edges every ``sync_interval`` seconds."""
        if self.sync_interval is None or not any(e.sync != "none" for e in validated.edges):
            return
        if self.clock() - self._last_sync < self.sync_interval:
            return
        from codebolt_topo.engine.sync import sync_edges

        self._last_sync = self.clock()
        await sync_edges(self.path, progress=self.report)

    def _validated(self) -> ValidatedTopology:
        """The validated file, parsed again only when its bytes change (parsing YAML is most of
        a pass's cost at a thousand nodes)."""
        text = self.path.read_bytes()
        if self._cache is None or self._cache[0] != text:
            self._cache = (text, validate_file(self.path, text.decode()))
        return self._cache[1]

    def _desired(self, validated: ValidatedTopology) -> dict[str, DesiredNode]:
        if self._desired_cache is None or self._desired_cache[0] is not validated:
            self._desired_cache = (validated, desired_nodes(validated))
        return self._desired_cache[1]

    @staticmethod
    def _tick(validated: ValidatedTopology) -> float:
        """Seconds between passes.

        Asking providers whether a process or container still exists is cheap, so passes run
        at least every second and a crash is healed without waiting for a heartbeat; the
        heartbeat interval (sent only when due) matters for nodes that hang without dying.
        """
        specs = [validated.topology.heartbeat] + [
            n.heartbeat for n in validated.topology.nodes.values() if n.heartbeat
        ]
        return max(0.05, min(1.0, min(spec.interval for spec in specs) / 2))

    async def pass_once(self, validated: ValidatedTopology | None = None) -> PassReport:
        """Observe without the lock; take it only to change something, and only if nobody
        changed the state in between (otherwise the next pass looks again)."""
        validated = validated or self._validated()
        state_file = StateFile(state_dir_for(self.path), validated.topology.name)
        state = state_file.load()
        engine = Engine(state_file, progress=self.report, providers=self.providers)
        observed = await engine.refresh(state)
        report = PassReport()
        report.health = await self._heartbeats(validated, state, observed)
        for name, verdict in report.health.items():
            if verdict is Health.FAILED and observed[name].alive:
                assert self.health is not None
                observed[name] = Observation(alive=False, reason=self.health.nodes[name].reason)
        plan = diff(self._desired(validated), state, observed)
        plan = self._admit(validated, state, plan, observed, report)
        newly_failed = [
            name
            for name, node in state.nodes.items()
            if not observed[name].alive and not observed[name].clean_exit
            and node.lifecycle is not Lifecycle.FAILED
        ]
        newly_stopped = [
            name
            for name, node in state.nodes.items()
            if observed[name].clean_exit and node.lifecycle is Lifecycle.RUNNING
        ]
        if not plan.has_changes and not newly_failed and not newly_stopped:
            return report
        with state_file.locked("watch", timeout=self.lock_timeout):
            current = state_file.load()
            if current.serial != state.serial:
                self.report("state changed during the pass; looking again")
                return report
            providers = {spec.provider for spec in validated.topology.nodes.values()}
            await engine.remove_orphans(state, providers)
            for name in newly_failed:
                state.nodes[name].move_to(Lifecycle.FAILED)
            for name in newly_stopped:  # stopped out of band, on request: not a failure
                state.nodes[name].move_to(Lifecycle.STOPPING)
                state.nodes[name].move_to(Lifecycle.STOPPED)
            if newly_failed or newly_stopped:
                state_file.save(state)
            if plan.has_changes:
                try:
                    await engine.apply(plan, state)
                except ApplyError as error:
                    report.failures.update(error.failures)
                for action in plan.actions:
                    self._after(action, report, state)
                report.applied = list(plan.actions)
        return report

    async def _heartbeats(
        self, validated: ValidatedTopology, state: State, observed: dict[str, Observation]
    ) -> dict[str, Health]:
        now = self.clock()
        if self.health is None:
            self.health = HealthTracker(default=validated.topology.heartbeat)
        tracker = self.health
        for name in list(tracker.nodes):
            if name not in state.nodes:
                tracker.forget(name)
        probes = {}
        for name, node in state.nodes.items():
            spec = (
                validated.topology.nodes[name].heartbeat
                if name in validated.topology.nodes
                else None
            )
            incarnation = stable_hash(node.handle)
            if name not in tracker.nodes or self._incarnations.get(name) != incarnation:
                tracker.track(name, now, spec)  # a new process starts with a clean record
                self._incarnations[name] = incarnation
            if not observed[name].alive:
                tracker.gone(name, observed[name].reason)
            elif node.lifecycle is Lifecycle.RUNNING and tracker.due(name, now):
                tracker.attempt(name, now)
                timeout = tracker.nodes[name].spec.timeout
                probes[name] = asyncio.create_task(self.prober.probe(node, timeout))
        for name, task in probes.items():
            error = await task
            if error is None:
                tracker.beat(name, self.clock())
            else:
                tracker.miss(name, error)
        verdicts = tracker.verdicts(self.clock())
        for name, verdict in verdicts.items():
            if verdict is not Health.HEALTHY:
                self.report(f"{name}: {verdict} ({tracker.nodes[name].reason})")
        return verdicts

    def _admit(
        self,
        validated: ValidatedTopology,
        state: State,
        plan: Plan,
        observed: dict[str, Observation],
        report: PassReport,
    ) -> Plan:
        """Drop replacements that the restart policy forbids or the backoff delays.

        ``on-failure`` brings back a node that crashed, hung or vanished, not one that was
        stopped on request (the provider saw a graceful exit); ``always`` brings back both."""
        now = self.clock()
        kept = []
        for action in plan.actions:
            dead = action.node in state.nodes and not observed[action.node].alive
            if action.kind in (ActionKind.REPLACE, ActionKind.CREATE) and dead:
                policy = validated.topology.nodes[action.node].restart
                if policy is RestartPolicy.NEVER:
                    report.held_back[action.node] = "restart: never"
                    continue
                if policy is RestartPolicy.ON_FAILURE and observed[action.node].clean_exit:
                    report.held_back[action.node] = (
                        "restart: on-failure, and it was stopped on request")
                    continue
                if not self.backoff.ready(action.node, now):
                    wait = self.backoff[action.node].next_try - now
                    report.held_back[action.node] = f"backing off {wait:.1f} s"
                    continue
            kept.append(action)
        return replace(plan, actions=tuple(kept))

    def _after(self, action: Action, report: PassReport, state: State) -> None:
        if action.kind not in (ActionKind.REPLACE, ActionKind.CREATE):
            return
        if action.node in report.failures:
            delay = self.backoff[action.node].failed(self.clock())
            self.report(f"{action.node}: start failed, next attempt in {delay:.1f} s")
        else:
            self.backoff[action.node].succeeded()
            if action.node in state.nodes:
                self.report(
                    f"{action.node}: {action.kind.value}d ({'; '.join(action.reasons) or 'new'})"
                )
