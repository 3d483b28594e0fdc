"""The library calls behind the main CLI commands: plan, apply and destroy.

Each function takes a topology path and returns data; the CLI only parses and renders, and
agents can call the same functions directly. ``targets`` and ``replace`` narrow or force a plan
(:mod:`codebolt_topo.engine.targeting`); a saved plan (:mod:`codebolt_topo.engine.planfile`) is
applied by :func:`apply_saved_plan` only while the state and the file are as they were.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codebolt_topo.engine.backends import backend_for, open_backend
from codebolt_topo.engine.history import (
    DISCARD_ONE,
    KEEP_ALL,
    Discard,
    Fate,
    HistoryKeeper,
    assess,
    history_notice,
    refusal,
)
from codebolt_topo.engine.planfile import SavedPlan, load_plan
from codebolt_topo.engine.reasons import masked_plan
from codebolt_topo.engine.runner import ApplyError, Engine
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.engine.targeting import Targeted, narrow_plan
from codebolt_topo.errors import ConfigError, TopoError
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import State
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import ActionKind, Plan, destroy_plan, diff
from codebolt_topo.plan.feasibility import check_requirements
from codebolt_topo.plan.placement import check_placements
from codebolt_topo.plan.validate import ValidatedTopology, validate_file

__all__ = [
    "PlanResult",
    "apply_saved_plan",
    "apply_topology",
    "destroy_topology",
    "plan_topology",
    "prepare_plan",
    "state_file_for",
]

Confirm = Callable[[Plan], bool]


@dataclass(frozen=True, slots=True)
class PlanResult:
    """A plan and what it was made from: the state as read (its lineage and serial, and whether
    a state file existed at all) and how many actions ``--target`` left out."""

    plan: Plan
    state: State
    state_exists: bool
    left_out: int = 0
    #: What becomes of the history of the nodes the plan replaces or removes, and the lines
    #: that say it (engine/history.py).
    fates: tuple[Fate, ...] = ()
    history: tuple[str, ...] = ()

    def saved(
        self,
        file: Path,
        *,
        variables: dict[str, object] | None = None,
        targets: Sequence[str] = (),
        replace: Sequence[str] = (),
        shown: Plan | None = None,
    ) -> SavedPlan:
        """This plan as ``plan -out`` writes it (``shown``: the plan with masked reasons)."""
        return SavedPlan.of(
            shown or self.plan,
            file=file,
            lineage=self.state.lineage if self.state_exists else None,
            serial=self.state.serial,
            variables=dict(variables or {}),
            targets=list(targets),
            replace=list(replace),
        )


def state_file_for(path: Path, name: str, spec: BackendSpec | None = None) -> StateBackend:
    """The state of topology ``name`` (file backend unless ``spec`` or the command line say
    otherwise; :func:`~codebolt_topo.engine.backends.backend_for` reads a topology's block)."""
    return open_backend(path, name, spec)


def _report_key(state_file: StateBackend, progress: Callable[[str], None]) -> None:
    if state_file.keyring.generated is not None:
        where = state_file.keyring.generated
        progress(
            f"tokens in the state are encrypted with a new state key, {where} (0600): whoever "
            "acts on these nodes from elsewhere needs it (CODEBOLT_STATE_KEY)"
        )


async def _plan(engine: Engine, validated: ValidatedTopology, state: State) -> Plan:
    return (await _plan_observed(engine, validated, state))[0]


async def _plan_observed(
    engine: Engine, validated: ValidatedTopology, state: State
) -> tuple[Plan, dict[str, Observation]]:
    """The plan, and what the providers observed of each recorded node (the history keeper
    reads whether a node that cannot be read is stopped or gone)."""
    check_requirements(validated, lambda name: engine.provider(name, state).offers)
    observed = await engine.refresh(state)
    plan = diff(desired_nodes(validated), state, observed)
    forecasts = await engine.forecast(plan, state)
    check_placements(forecasts, validated.source_map)
    return replace(plan, placements={f.node: f for f in forecasts}), observed


def _fates(
    state_file: StateBackend,
    state: State,
    plan: Plan,
    observed: dict[str, Observation],
    discard: Discard,
) -> list[Fate]:
    """What becomes of the history of each node ``plan`` replaces or removes.

    A node named by ``--discard-history-of`` that the state does not hold is refused: a typo
    there would otherwise let the real node's history be refused (or kept) unnoticed."""
    unknown = sorted(discard.nodes - set(state.nodes))
    if unknown:
        known = ", ".join(sorted(state.nodes)) or "none"
        raise ConfigError(
            f"{DISCARD_ONE} {', '.join(unknown)}: no such node in the state of "
            f"{state.topology!r} (its nodes: {known})"
        )
    return [
        assess(
            state_file,
            state.nodes[action.node],
            observed.get(action.node),
            replacing=action.kind is ActionKind.REPLACE,
            discard=discard,
        )
        for action in plan.of_kind(ActionKind.REPLACE, ActionKind.DELETE)
        if action.node in state.nodes
    ]


async def _observe(engine: Engine, state: State) -> dict[str, Observation]:
    """What each provider sees of each recorded node (destroy: whether a node that cannot be
    read is merely stopped or gone); a provider that cannot answer leaves its nodes out."""

    async def observe(name: str) -> tuple[str, Observation | None]:
        node = state.nodes[name]
        if not node.handle:
            return name, None
        try:
            return name, await engine.provider(node.provider, state).inspect(node.handle)
        except TopoError:
            return name, None

    seen = await asyncio.gather(*(observe(name) for name in state.nodes))
    return {name: observation for name, observation in seen if observation is not None}


def _narrow(plan: Plan, state: State, targets: Sequence[str], replace: Sequence[str]) -> Targeted:
    if not targets and not replace:
        return Targeted(plan, None, 0)
    return narrow_plan(plan, state, targets=targets, replace_nodes=replace)


def prepare_plan(
    path: Path,
    *,
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    discard: Discard = KEEP_ALL,
) -> PlanResult:
    """What apply would do now, with the state it was planned from and what becomes of the
    history of the nodes it replaces or removes (reads state, probes nodes, takes no lock)."""
    validated = validate_file(path)
    state_file = backend_for(path, validated.topology)
    state = state_file.load(sealed_ok=True)  # planning acts on no node: no key needed
    plan, observed = asyncio.run(_plan_observed(Engine(state_file), validated, state))
    narrowed = _narrow(plan, state, targets, replace)
    fates = _fates(state_file, state, narrowed.plan, observed, discard)
    return PlanResult(
        narrowed.plan,
        state,
        state_file.exists(),
        narrowed.left_out,
        tuple(fates),
        tuple(history_notice(state_file, fates)),
    )


def plan_topology(path: Path, *, targets: Sequence[str] = (), replace: Sequence[str] = ()) -> Plan:
    """What apply would do now, without doing it (reads state, probes nodes, takes no lock)."""
    return prepare_plan(path, targets=targets, replace=replace).plan


def apply_topology(
    path: Path,
    *,
    confirm: Confirm = lambda plan: True,
    progress: Callable[[str], None] = lambda message: None,
    lock_timeout: float = 0.0,
    targets: Sequence[str] = (),
    replace: Sequence[str] = (),
    saved: SavedPlan | None = None,
    show_sensitive: bool = False,
    discard: Discard = KEEP_ALL,
    notice: Callable[[list[str]], None] = lambda lines: None,
) -> tuple[Plan, bool]:
    """Plan, ask ``confirm``, then apply. Returns the plan and whether it was applied.

    ``confirm`` is shown the plan with ``env`` values masked unless ``show_sensitive``.

    ``targets`` narrows the plan to those nodes and their neighbours' rewiring, ``replace``
    forces those nodes to be replaced; ``saved`` (with its own targets and replacements) is
    refused unless the state, the file and the actions are still the ones it was made from.
    The history of nodes removed or replaced is archived before each stops, but for the nodes
    in ``discard``; ``notice`` is told, before ``confirm``, what becomes of it. A removed node
    whose history cannot be read and is not discarded refuses the whole apply before anything
    changes (:class:`~codebolt_topo.engine.history.HistoryRefused`).
    """
    if saved is not None:
        saved.check_file()
        targets, replace = saved.targets, saved.replace
    validated = validate_file(path)
    if saved is not None and validated.topology.name != saved.topology:
        raise ConfigError(
            f"saved plan is for topology {saved.topology!r}, {path} defines "
            f"{validated.topology.name!r}"
        )
    state_file = backend_for(path, validated.topology)
    with state_file.locked("apply", timeout=lock_timeout):
        existed = state_file.exists()
        state = state_file.load()
        if saved is not None:
            saved.check_state(exists=existed, lineage=state.lineage, serial=state.serial)
        engine = Engine(state_file, progress=progress)

        async def run() -> tuple[Plan, bool]:
            providers = {spec.provider for spec in validated.topology.nodes.values()}
            await engine.remove_orphans(state, providers)
            planned, observed = await _plan_observed(engine, validated, state)
            narrowed = _narrow(planned, state, targets, replace)
            plan = narrowed.plan
            if saved is not None:
                saved.check_actions(plan)
            if narrowed.left_out:
                progress(
                    f"targeting is in effect: {narrowed.left_out} other change(s) are left "
                    "for a full apply"
                )
            shown = masked_plan(plan, show_sensitive=show_sensitive)
            fates = _fates(state_file, state, plan, observed, discard)
            notice(history_notice(state_file, fates))
            refused = refusal(fates, "apply")
            if refused is not None:
                raise refused
            engine.history = HistoryKeeper(
                state_file, discard=discard, fates={f.node: f for f in fates}, progress=progress
            )
            if plan.has_changes and not confirm(shown):
                return plan, False  # declined: change nothing, sync nothing
            if plan.has_changes:
                try:
                    await engine.apply(plan, state, configure=narrowed.configure)
                except ApplyError:
                    if state_file.unavailable is not None:  # one cause, said once
                        raise state_file.unavailable from None
                    raise
                finally:
                    _report_key(state_file, progress)
            if not targets and any(edge.sync != "none" for edge in validated.edges):
                from codebolt_topo.engine.sync import sync_edges

                await sync_edges(path, progress=progress)
            return plan, plan.has_changes

        return asyncio.run(run())


def apply_saved_plan(
    plan_file: Path,
    *,
    progress: Callable[[str], None] = lambda message: None,
    lock_timeout: float = 0.0,
    discard: Discard = KEEP_ALL,
    notice: Callable[[list[str]], None] = lambda lines: None,
) -> tuple[SavedPlan, Plan, bool]:
    """Apply a plan written by ``plan -out``, rendered with the variables it was made with;
    refused (StateError) when the state, the file or the resulting actions moved since
    (``discard``, ``notice``: as :func:`apply_topology`)."""
    from codebolt_topo.model.template import TEMPLATE_VARS

    saved = load_plan(plan_file)
    token = TEMPLATE_VARS.set(saved.variables or None)
    try:
        plan, applied = apply_topology(
            Path(saved.file),
            progress=progress,
            lock_timeout=lock_timeout,
            saved=saved,
            discard=discard,
            notice=notice,
        )
    finally:
        TEMPLATE_VARS.reset(token)
    return saved, plan, applied


def renew_join_credential(
    path: Path, node: str, *, progress: Callable[[str], None] = lambda message: None
) -> None:
    """Give joined node ``node`` a new one-time join credential and new edge tokens, and
    rewire its neighbours at once: the old credential is refused as revoked, and a machine
    that joined with it is cut off (its tokens no longer open any edge). Nothing else changes
    (the plan's other changes are left for an apply)."""
    from codebolt_topo.engine.joining import prepare_offers, renew_secret

    validated = validate_file(path)
    state_file = backend_for(path, validated.topology)
    with state_file.locked("renew join credential"):
        state = state_file.load()
        renew_secret(state, node)
        engine = Engine(state_file, progress=progress)

        async def run() -> None:
            planned, _ = await _plan_observed(engine, validated, state)
            desired = planned.desired
            engine.sync_edge_tokens(state, desired)  # the node's edges get new tokens
            failures = prepare_offers(engine, state, {node: desired[node]})
            wanted = desired[node]
            neighbours = [desired[n] for n in {*wanted.peers, *wanted.inbound} if n in desired]
            if not failures:
                await engine.configure(state, [*neighbours, wanted], failures)
            if failures:
                raise ApplyError(failures)

        asyncio.run(run())
        state_file.save(state)


def destroy_topology(
    path: Path,
    *,
    name: str | None = None,
    confirm: Confirm = lambda plan: True,
    progress: Callable[[str], None] = lambda message: None,
    lock_timeout: float = 0.0,
    discard: Discard = KEEP_ALL,
    notice: Callable[[list[str]], None] = lambda lines: None,
) -> tuple[Plan, bool]:
    """Stop every node recorded in the state and remove their runtime files.

    Works from the state alone when the topology file no longer validates (pass ``name``).
    Every node's history is archived before anything stops, but for the nodes in ``discard``;
    ``notice`` is told, before ``confirm``, what becomes of each. A node whose history cannot
    be read and is not discarded refuses the destroy before anything changes
    (:class:`~codebolt_topo.engine.history.HistoryRefused`), and so does one that could not be
    read when its turn came (the archives this destroy wrote are then taken back).
    """
    providers: set[str] = set()
    spec: BackendSpec | None = None
    if name is None:
        topology = validate_file(path).topology
        name, spec = topology.name, topology.backend
        providers = {node.provider for node in topology.nodes.values()}
    state_file = state_file_for(path, name) if spec is None else open_backend(path, name, spec)
    with state_file.locked("destroy", timeout=lock_timeout):
        state = state_file.load(sealed_ok=True)  # stopping a node needs no admin token
        plan = destroy_plan(state)
        engine = Engine(state_file, progress=progress)
        if not plan.has_changes:
            asyncio.run(engine.remove_orphans(state, providers))
            return plan, False
        observed = asyncio.run(_observe(engine, state))
        fates = _fates(state_file, state, plan, observed, discard)
        notice(history_notice(state_file, fates))
        refused = refusal(fates, "destroy")
        if refused is not None:
            raise refused
        if not confirm(plan):
            return plan, False
        keeper = HistoryKeeper(
            state_file, discard=discard, fates={f.node: f for f in fates}, progress=progress
        )

        async def run() -> None:
            await keeper.keep_all(state, list(state.nodes.values()))  # all, or none
            await engine.destroy(state)
            await engine.remove_orphans(state, providers | {a.provider for a in plan.actions})

        asyncio.run(run())
        shutil.rmtree(state_file.runtime_dir, ignore_errors=True)
        return plan, True
