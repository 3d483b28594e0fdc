"""The reconciler behind ``codebolt watch``: level-triggered passes that heal a topology.

Each pass compares the topology file with what it observes *now* (providers' view plus
heartbeats), never with the last event it saw, so a missed event cannot leave it confused. A
pass then applies what the file asks for, except that replacing a dead node obeys the node's
``restart:`` policy and its own capped exponential backoff. ``codebolt apply`` is one such pass
without the policy (the user asked for it explicitly).

Run as a standing service next to a shared state, a reconciler may be given a
:class:`~codebolt_topo.engine.leadership.Leadership`: it then passes only while it holds the
watch lease (a standby only keeps trying to take it), and every state write it makes is fenced
by the lease's term. :class:`~codebolt_topo.engine.metrics.WatchMetrics` records what it sees
and does (nodes by lifecycle, heartbeat latency, restarts, pass time, bytes synced).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.backoff import BackoffTable
from codebolt_topo.engine.heartbeat import HeartbeatProber
from codebolt_topo.engine.history import HistoryKeeper
from codebolt_topo.engine.joined_nodes import dials_out_only, joined_and_placed
from codebolt_topo.engine.leadership import Leadership
from codebolt_topo.engine.liveness import Health, HealthTracker
from codebolt_topo.engine.metrics import WatchMetrics
from codebolt_topo.engine.reasons import masked_plan, one_line
from codebolt_topo.engine.runner import ApplyError, Engine
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.errors import LockError, TopoError
from codebolt_topo.model.health import RestartPolicy
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.desired import DesiredNode, desired_nodes, stable_hash
from codebolt_topo.plan.diff import Action, ActionKind, Plan, diff
from codebolt_topo.plan.reasons import Reason
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
        leadership: Leadership | None = None,
        metrics: WatchMetrics | None = None,
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
        self._reported: dict[str, tuple[Health, str]] = {}
        self._cache: tuple[bytes, ValidatedTopology] | None = None
        self.sync_interval = sync_interval
        self._last_sync = float("-inf")
        self._desired_cache: tuple[ValidatedTopology, dict[str, DesiredNode]] | None = None
        self.leadership = leadership
        self.metrics = metrics
        self._backend: tuple[object, StateBackend] | None = None
        self._where: dict[str, str] = {}

    def state(self, validated: ValidatedTopology) -> StateBackend:
        """The topology's state backend, kept across passes (a database connection is reused)
        and opened again only when the file's name or ``backend:`` block changes."""
        key = (validated.topology.name, validated.topology.backend)
        if self._backend is None or self._backend[0] != key:
            if self._backend is not None:
                self._backend[1].close()
            self._backend = (key, backend_for(self.path, validated.topology))
        return self._backend[1]

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a broken file or a held lock skips a pass.
        With a :class:`Leadership`, only while it leads (a lease kept by a task of its own, so
        a long pass never lets it lapse)."""
        keeper = None
        if self.leadership is not None:
            await self._lease_step()  # lead (or stand by) from the first pass on
            keeper = asyncio.ensure_future(self._keep_lease(stop))
        try:
            while not stop.is_set():
                tick = 1.0
                leading = self.leadership is None or self.leadership.leading
                try:
                    validated = self._validated()
                    tick = self._tick(validated)
                    if leading:
                        started = time.perf_counter()
                        await self.pass_once(validated)
                        if self.metrics is not None:
                            self.metrics.pass_seconds.observe(time.perf_counter() - started)
                        await self._sync_if_due(validated)
                except LockError as error:
                    self._failed(f"pass skipped: {error}")
                except TopoError as error:
                    self._failed(f"pass failed: {error}")
                if self.metrics is not None:
                    self.metrics.turned("leader" if leading else "standby")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            if self.leadership is not None:
                await asyncio.to_thread(self.leadership.release)
            await self.prober.close()
            if self._backend is not None:
                self._backend[1].close()

    def _failed(self, message: str) -> None:
        self.report(message)
        if self.metrics is not None:
            self.metrics.pass_failures.inc()

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Renew the lease (or try to take it) every ``leadership.interval`` seconds."""
        assert self.leadership is not None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.leadership.interval)
            if not stop.is_set():
                await self._lease_step()

    async def _lease_step(self) -> None:
        assert self.leadership is not None
        leadership = self.leadership
        leading = await asyncio.to_thread(leadership.step)
        if self.metrics is not None:
            self.metrics.lead(leading)  # /healthz tells the role as soon as it is known
            if leadership.lease is not None:
                self.metrics.lease_term.set(leadership.lease.term)
        if self._backend is not None:
            self._backend[1].fence(leadership.lease if leading else None)

    async def _sync_if_due(self, validated: ValidatedTopology) -> None:
        """Narrative sync along ``sync:`` edges every ``sync_interval`` seconds."""
        if self.sync_interval is None or not any(e.sync != "none" for e in validated.edges):
            return
        if self.clock() - self._last_sync < self.sync_interval:
            return
        from codebolt_topo.engine.sync import sync_edges

        self._last_sync = self.clock()
        synced = await sync_edges(self.path, progress=self.report)
        if self.metrics is not None:
            self.metrics.synced_bytes.inc(synced.bytes)

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
        state_file = self.state(validated)
        if self.leadership is not None:  # every write of this pass fenced by our lease term
            if self.leadership.lease is None:
                return PassReport()
            state_file.fence(self.leadership.lease)
        state = state_file.load()
        keeper = HistoryKeeper(state_file, progress=self.report)  # a replaced node's history
        engine = Engine(state_file, progress=self.report, providers=self.providers, history=keeper)
        observed = await engine.refresh(state)
        self._report_moves(observed)
        keeper.observed = observed  # a replaced node whose container is gone: said so
        report = PassReport()
        report.health = await self._heartbeats(validated, state, observed)
        for name, verdict in report.health.items():
            if verdict is Health.FAILED and observed[name].alive:
                assert self.health is not None
                observed[name] = Observation(alive=False, reason=self.health.nodes[name].reason)
        unwired = self._unwired(state, report.health)
        for name in unwired:  # pushed again: its daemon restarted in place and lost it
            state.nodes[name].runtime_hash = None
        plan = _rewire(diff(self._desired(validated), state, observed), unwired)
        plan = self._admit(validated, state, plan, observed, report)
        newly_failed = [
            name
            for name, node in state.nodes.items()
            if not observed[name].alive
            and not observed[name].clean_exit
            and node.lifecycle is not Lifecycle.FAILED
        ]
        newly_stopped = [
            name
            for name, node in state.nodes.items()
            if observed[name].clean_exit and node.lifecycle is Lifecycle.RUNNING
        ]
        if self.metrics is not None:
            self.metrics.count_nodes(node.lifecycle for node in state.nodes.values())
        joined = await self._joined_moves(validated, state)
        if not plan.has_changes and not newly_failed and not newly_stopped and not joined:
            return report
        with state_file.locked("watch", timeout=self.lock_timeout):
            current = state_file.load()
            if current.serial != state.serial:
                self.report("state changed during the pass; looking again")
                return report
            providers = {spec.provider for spec in validated.topology.nodes.values()}
            await engine.remove_orphans(state, providers)
            for name in newly_failed:
                state.nodes[name].move_to(Lifecycle.FAILED, observed[name].reason)
                engine.journal.record(name, "failed", observed[name].reason)
            for name in newly_stopped:  # stopped out of band, on request: not a failure
                state.nodes[name].move_to(Lifecycle.STOPPING, observed[name].reason)
                state.nodes[name].move_to(Lifecycle.STOPPED, observed[name].reason)
                engine.journal.record(name, "stopped", observed[name].reason)
            for name, (target, why) in joined.items():  # left, or back: as its neighbours saw
                node = state.nodes[name]
                node.move_to(
                    Lifecycle.STOPPING if target is Lifecycle.STOPPED else Lifecycle.STARTING
                )
                node.move_to(target, why)
                engine.journal.record(name, target.value.lower(), why)
                self.report(f"{name}: {why}")
            if newly_failed or newly_stopped or joined:
                state_file.save(state)
            if plan.has_changes:
                shown = masked_plan(plan)  # what the report may say: env values masked
                try:
                    await engine.apply(plan, state)
                except ApplyError as error:
                    report.failures.update(error.failures)
                for action in shown.actions:
                    self._after(action, report, state)
                report.applied = list(plan.actions)
                if self.metrics is not None:
                    self.metrics.count_nodes(node.lifecycle for node in state.nodes.values())
        return report

    async def _joined_moves(
        self, validated: ValidatedTopology, state: State
    ) -> dict[str, tuple[Lifecycle, str]]:
        """Joined nodes whose machine left or came back since the state last said: STOPPED
        when the last link it had closed cleanly (Ctrl-C, ``codebolt leave``), RUNNING again
        when it holds one anew. Only their neighbours can tell (engine/heartbeat.py); a lost
        link changes nothing here (``status`` shows it), and nothing is ever replaced."""
        moves = {}
        graph = validated.graph
        for name, node in state.nodes.items():
            if not joined_and_placed(node) or name not in validated.topology.nodes:
                continue
            spec = validated.topology.nodes[name].heartbeat or validated.topology.heartbeat
            neighbours = sorted({*graph.successors(name), *graph.predecessors(name)})
            beat = await self.prober.joined(state, name, neighbours, spec.timeout)
            where = f" (from {beat.remote})" if beat.remote else ""
            if beat.state == "left" and node.lifecycle is Lifecycle.RUNNING:
                moves[name] = (Lifecycle.STOPPED, f"{beat.problem(name)}{where}")
            elif beat.state == "up" and node.lifecycle is Lifecycle.STOPPED:
                moves[name] = (Lifecycle.RUNNING, f"joined again{where}, through {beat.via}")
        return moves

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
            if dials_out_only(node):  # joined elsewhere: seen through its neighbours, and
                continue  # never restarted from here (a new node would need a new join)
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
                probes[name] = asyncio.create_task(self._probe(node, timeout))
        for name, task in probes.items():
            error = await task
            if error is None:
                tracker.beat(name, self.clock())
            else:
                tracker.miss(name, error)
        verdicts = tracker.verdicts(self.clock())
        self._report_changes(verdicts, tracker)
        return verdicts

    def _report_moves(self, observed: dict[str, Observation]) -> None:
        """Say when a node's own engine moved it to another machine (Swarm rescheduling a
        task): the same node, alive, healed by the engine rather than replaced by us."""
        for name, seen in observed.items():
            where = seen.where if seen.alive and not seen.where.startswith("(") else ""
            before = self._where.get(name, "")
            if where and before and where != before:
                self.report(f"{name}: moved by its engine from {before} to {where}")
            if where:
                self._where[name] = where

    def _unwired(self, state: State, health: dict[str, Health]) -> dict[str, int]:
        """Healthy nodes whose daemon answered with no wiring (generation 0) although some was
        pushed: its own engine restarted it in place (Swarm, a restart policy). Each answer
        counts once: the next heartbeat tells whether the push took."""
        reported = self.prober.generations
        unwired = {
            name: node.generation
            for name, node in state.nodes.items()
            if health.get(name) is Health.HEALTHY
            and node.lifecycle is Lifecycle.RUNNING
            and node.generation > 0
            and reported.get(name) == 0
        }
        for name in unwired:
            del reported[name]
        return unwired

    async def _probe(self, node: NodeState, timeout: float) -> str | None:
        """One heartbeat, its round trip recorded when it was answered."""
        started = time.perf_counter()
        error = await self.prober.probe(node, timeout)
        if self.metrics is not None:
            if error is None:
                self.metrics.heartbeat_latency.observe(time.perf_counter() - started)
            else:
                self.metrics.heartbeat_failures.inc()
        return error

    def _report_changes(self, verdicts: dict[str, Health], tracker: HealthTracker) -> None:
        """Report a node's verdict when it changes, not on every pass: a ``restart: never``
        node that stays dead is one line, not one a second (and one more when it recovers)."""
        for name in list(self._reported):
            if name not in verdicts:
                del self._reported[name]
        for name, verdict in verdicts.items():
            key = (verdict, self._incarnations.get(name, ""))
            before = self._reported.get(name)
            if verdict is Health.HEALTHY:
                if before is not None and before[0] is not Health.HEALTHY:
                    self.report(f"{name}: healthy again")
                self._reported[name] = key
            elif before != key:
                self.report(f"{name}: {verdict} ({tracker.nodes[name].reason})")
                self._reported[name] = key

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
                        "restart: on-failure, and it was stopped on request"
                    )
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
            if action.kind is ActionKind.REPLACE and self.metrics is not None:
                self.metrics.restarts.labels(action.node).inc()
            if action.node in state.nodes:
                self.report(f"{action.node}: {action.kind.value}d ({one_line(action) or 'new'})")


def _rewire(plan: Plan, unwired: dict[str, int]) -> Plan:
    """``plan`` with the update of each node in ``unwired`` saying why it is pushed again."""
    if not unwired:
        return plan
    actions = tuple(
        replace(
            action,
            reasons=(
                Reason.note(
                    "its daemon restarted in place and lost its wiring (generation 0, "
                    f"{unwired[action.node]} pushed): pushed again"
                ),
            ),
        )
        if action.kind is ActionKind.UPDATE and action.node in unwired
        else action
        for action in plan.actions
    )
    return replace(plan, actions=actions)
