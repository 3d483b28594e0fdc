"""The library calls behind the main CLI commands: plan, apply and destroy.

Each function takes a topology path and returns data; the CLI only parses and renders, and
agents can call the same functions directly.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from codebolt_topo.engine.runner import Engine
from codebolt_topo.engine.statefile import StateFile, state_dir_for
from codebolt_topo.model.state import State
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import Plan, destroy_plan, diff
from codebolt_topo.plan.feasibility import check_requirements
from codebolt_topo.plan.validate import ValidatedTopology, validate_file

__all__ = [
    "apply_topology",
    "destroy_topology",
    "plan_topology",
    "state_file_for",
]

Confirm = Callable[[Plan], bool]


def state_file_for(path: Path, name: str) -> StateFile:
    return StateFile(state_dir_for(path), name)


async def _plan(engine: Engine, validated: ValidatedTopology, state: State) -> Plan:
    check_requirements(validated, lambda name: engine.provider(name, state).offers)
    observed = await engine.refresh(state)
    return diff(desired_nodes(validated), state, observed)


def plan_topology(path: Path) -> Plan:
    """What apply would do now, without doing it (reads state, probes nodes, takes no lock)."""
    validated = validate_file(path)
    state_file = state_file_for(path, validated.topology.name)
    state = state_file.load()
    return asyncio.run(_plan(Engine(state_file), validated, state))


def apply_topology(
    path: Path,
    *,
    confirm: Confirm = lambda plan: True,
    progress: Callable[[str], None] = lambda message: None,
    lock_timeout: float = 0.0,
) -> tuple[Plan, bool]:
    """Plan, ask ``confirm``, then apply. Returns the plan and whether it was applied."""
    validated = validate_file(path)
    state_file = state_file_for(path, validated.topology.name)
    with state_file.locked("apply", timeout=lock_timeout):
        state = state_file.load()
        engine = Engine(state_file, progress=progress)

        async def run() -> tuple[Plan, bool]:
            providers = {spec.provider for spec in validated.topology.nodes.values()}
            await engine.remove_orphans(state, providers)
            plan = await _plan(engine, validated, state)
            if plan.has_changes and not confirm(plan):
                return plan, False  # declined: change nothing, sync nothing
            if plan.has_changes:
                await engine.apply(plan, state)
            if any(edge.sync != "none" for edge in validated.edges):
                from codebolt_topo.engine.sync import sync_edges

                await sync_edges(path, progress=progress)
            return plan, plan.has_changes

        return asyncio.run(run())


def destroy_topology(
    path: Path,
    *,
    name: str | None = None,
    confirm: Confirm = lambda plan: True,
    progress: Callable[[str], None] = lambda message: None,
    lock_timeout: float = 0.0,
) -> tuple[Plan, bool]:
    """Stop every node recorded in the state and remove their runtime files.

    Works from the state alone when the topology file no longer validates (pass ``name``).
    """
    providers: set[str] = set()
    if name is None:
        topology = validate_file(path).topology
        name = topology.name
        providers = {spec.provider for spec in topology.nodes.values()}
    state_file = state_file_for(path, name)
    with state_file.locked("destroy", timeout=lock_timeout):
        state = state_file.load()
        plan = destroy_plan(state)
        engine = Engine(state_file, progress=progress)
        if not plan.has_changes:
            asyncio.run(engine.remove_orphans(state, providers))
            return plan, False
        if not confirm(plan):
            return plan, False

        async def run() -> None:
            await engine.destroy(state)
            await engine.remove_orphans(state, providers | {a.provider for a in plan.actions})

        asyncio.run(run())
        shutil.rmtree(state_file.runtime_dir, ignore_errors=True)
        return plan, True
