"""Desired topology vs. recorded state vs. observed reality → a list of actions (pure).

The diff never performs I/O: the caller passes what the providers observed (``observed``), so
drift (a node killed out of band) shows up as a replacement with its reason, and the whole
function is testable with plain data. Each reason is data
(:class:`~codebolt_topo.plan.reasons.Reason`: field, before, after, the sentence), made here
where the values are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import State
from codebolt_topo.plan.desired import DesiredNode
from codebolt_topo.plan.placement import Forecast
from codebolt_topo.plan.reasons import Reason, launch_reasons, peer_endpoint_changes

__all__ = ["Action", "ActionKind", "Plan", "destroy_plan", "diff"]


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.value]


@dataclass(frozen=True, slots=True)
class Action:
    """One node to create, update, replace or destroy, and why."""

    kind: ActionKind
    node: str
    provider: str
    reasons: tuple[Reason, ...] = ()

    @property
    def messages(self) -> tuple[str, ...]:
        """The reasons' sentences, values as they are (see :meth:`masked`)."""
        return tuple(reason.message for reason in self.reasons)

    def masked(self) -> Action:
        """This action with sensitive values in its reasons masked."""
        return replace(self, reasons=tuple(reason.masked() for reason in self.reasons))


@dataclass(frozen=True, slots=True)
class Plan:
    topology: str
    actions: tuple[Action, ...]
    desired: Mapping[str, DesiredNode] = field(default_factory=dict)
    placements: Mapping[str, Forecast] = field(default_factory=dict)
    """Where placing providers (hybrid) will put the nodes they create, by node."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio formats the result of a finished task (through the SIGINT
        # handler asyncio.run installs) and a 10,000-node plan in full took 0.6 s to print.
        kinds = ", ".join(
            f"{self.count(kind)} {kind.value}" for kind in ActionKind if self.count(kind)
        )
        return f"Plan({self.topology!r}: {len(self.actions)} actions{': ' if kinds else ''}{kinds})"

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def count(self, kind: ActionKind) -> int:
        return sum(1 for action in self.actions if action.kind is kind)

    def of_kind(self, *kinds: ActionKind) -> list[Action]:
        return [action for action in self.actions if action.kind in kinds]

    def masked(self) -> Plan:
        """This plan as a screen, a log or a saved plan may show it: ``env`` values masked."""
        return replace(self, actions=tuple(action.masked() for action in self.actions))


def _wiring_reasons(desired: DesiredNode, recorded: Mapping[str, Any]) -> list[Reason]:
    if not recorded:
        return [Reason.note("first configuration")]
    reasons = []
    for key in ("peers", "inbound", "capabilities"):
        want, have = set(desired.wiring[key]), set(recorded.get(key, []))
        if want != have:
            change = [f"+{n}" for n in sorted(want - have)] + [f"-{n}" for n in sorted(have - want)]
            reasons.append(Reason(key, sorted(have), sorted(want), f"{key} {' '.join(change)}"))
    reasons += _dial_reasons(desired, recorded)
    want_plugins, have_plugins = desired.plugins, recorded.get("plugins", {})
    if want_plugins != have_plugins:
        added = sorted(set(want_plugins) - set(have_plugins))
        removed = sorted(set(have_plugins) - set(want_plugins))
        parts = [f"+{n}" for n in added] + [f"-{n}" for n in removed]
        message = f"plugins {' '.join(parts)}" if parts else "plugin settings changed"
        reasons.append(Reason("plugins", have_plugins, want_plugins, message))
    # Whole tables: too large to repeat in a reason, and they follow from the edges above.
    if desired.routes != recorded.get("routes", {}) and not reasons:
        reasons.append(Reason("routes", None, None, "routes changed"))
    if desired.upstream != recorded.get("upstream", {}) and not reasons:
        reasons.append(Reason("upstream", None, None, "upstream owners changed"))
    return reasons


def _dial_reasons(desired: DesiredNode, recorded: Mapping[str, Any]) -> list[Reason]:
    """One reason per edge of this node whose ``dial`` changed (absent: ``auto``)."""
    reasons = []
    for key, edge in (("dials", "{me} -> {other}"), ("inbound_dials", "{other} -> {me}")):
        want, have = desired.wiring.get(key, {}), recorded.get(key, {})
        for other in sorted(set(want) | set(have)):
            before, after = have.get(other, "auto"), want.get(other, "auto")
            if before != after:
                name = edge.format(me=desired.name, other=other)
                reasons.append(
                    Reason("dial", before, after, f"dial of {name}: {before} -> {after}")
                )
    return reasons


def diff(
    desired: Mapping[str, DesiredNode],
    state: State,
    observed: Mapping[str, Observation],
) -> Plan:
    """Actions that turn ``state`` (as ``observed``) into ``desired``.

    A node whose peers are being created or replaced is updated too: its peer's endpoint changes.
    """
    actions: list[Action] = []
    moving: set[str] = set()
    for name, want in desired.items():
        have = state.nodes.get(name)
        if have is None:
            actions.append(Action(ActionKind.CREATE, name, want.spec.provider))
            moving.add(name)
            continue
        seen = observed.get(name)
        if have.launch_hash != want.launch_hash:
            actions.append(
                Action(
                    ActionKind.REPLACE,
                    name,
                    want.spec.provider,
                    tuple(launch_reasons(want.launch_settings, have.launch)),
                )
            )
            moving.add(name)
        elif seen is not None and not seen.alive:
            actions.append(
                Action(
                    ActionKind.REPLACE,
                    name,
                    want.spec.provider,
                    (Reason.note(f"drift: {seen.reason}"),),
                )
            )
            moving.add(name)
    for name, want in desired.items():
        have = state.nodes.get(name)
        if have is None or name in moving:
            continue
        reasons = _wiring_reasons(want, have.wiring)
        if have.runtime_hash is None and not reasons:
            reasons = [Reason.note("never configured")]
        known_peers = set(have.wiring.get("peers", []))
        moved_peers = sorted(p for p in want.peers if p in moving and p in known_peers)
        if moved_peers:
            reasons.append(peer_endpoint_changes(moved_peers))
        if reasons:
            actions.append(Action(ActionKind.UPDATE, name, want.spec.provider, tuple(reasons)))
    for name, have in state.nodes.items():
        if name not in desired:
            actions.append(
                Action(
                    ActionKind.DELETE,
                    name,
                    have.provider,
                    (Reason.note("removed from the topology file"),),
                )
            )
    order = {
        ActionKind.DELETE: 3,
        ActionKind.REPLACE: 1,
        ActionKind.CREATE: 0,
        ActionKind.UPDATE: 2,
    }
    actions.sort(key=lambda action: (order[action.kind], action.node))
    return Plan(topology=state.topology, actions=tuple(actions), desired=desired)


def destroy_plan(state: State) -> Plan:
    """Every recorded node deleted."""
    actions = tuple(
        Action(ActionKind.DELETE, name, node.provider) for name, node in sorted(state.nodes.items())
    )
    return Plan(topology=state.topology, actions=actions)
