"""``apply --target NODE`` and ``apply --replace NODE``: a plan narrowed or forced, as Terraform's
``-target`` and ``-replace`` do.

``--replace`` turns a node's update (or no change at all) into a replacement: a fresh process
(container, VM daemon) with the same settings, for a node that misbehaves without dying. The
nodes that send work to it are updated with it, since its endpoint changes.

``--target`` keeps the targets' own actions and the rewiring the rest of the topology needs to
follow them: the nodes that send work to a target or receive work from it, the nodes whose
routes lead to it (an entry two hops up must learn the way to a new node) and the nodes whose
upstream sets name it (they check a request's owner against them); for a removed target, the
nodes whose recorded wiring still names it. Every other change waits for a full apply, and only
those nodes get a ``configure`` push. Such a node is pushed its whole desired wiring, as a full
apply would: wiring is one document per node, not a set of independent edges.

A name may be a node or a replicated node's base name (``worker`` for ``worker-1`` …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.state import State
from codebolt_topo.plan.diff import Action, ActionKind, Plan
from codebolt_topo.plan.reasons import Reason, peer_endpoint_changes

__all__ = ["REPLACE_REASON", "Targeted", "narrow_plan"]

REPLACE_REASON = "replacement requested (--replace)"

_ORDER = {ActionKind.CREATE: 0, ActionKind.REPLACE: 1, ActionKind.UPDATE: 2, ActionKind.DELETE: 3}


@dataclass(frozen=True, slots=True)
class Targeted:
    """A narrowed plan, which nodes may be configured (None: all) and how many of the full
    plan's actions were left out."""

    plan: Plan
    configure: frozenset[str] | None
    left_out: int


def _expand(names: Sequence[str], known: set[str], option: str) -> list[str]:
    found: list[str] = []
    for name in names:
        if name in known:
            found.append(name)
            continue
        replicas = sorted(n for n in known if re.fullmatch(rf"{re.escape(name)}-\d+", n))
        if not replicas:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"{option} {name!r}: no such node in the file or the state (nodes: {listed})"
            )
        found.extend(replicas)
    return list(dict.fromkeys(found))


def _senders_to(plan: Plan, state: State, names: set[str]) -> set[str]:
    """Running nodes whose desired or recorded peers include one of ``names``."""
    senders = {d.name for d in plan.desired.values() if names & set(d.peers)}
    senders |= {n for n, node in state.nodes.items() if names & set(node.wiring.get("peers", []))}
    return {n for n in senders if n in state.nodes and n in plan.desired} - names


def _names_any(wiring: Mapping[str, Any], chosen: set[str]) -> bool:
    """Whether recorded or desired wiring (peers, inbound, routes, upstream) names ``chosen``."""
    for key in ("peers", "inbound"):
        if chosen & set(wiring.get(key) or []):
            return True
    routes = wiring.get("routes") or {}
    if chosen & set(routes):
        return True
    upstream = wiring.get("upstream") or {}
    return any(chosen & set(owners) for owners in upstream.values())


def _following(plan: Plan, state: State, chosen: set[str]) -> set[str]:
    """Running nodes whose wiring, desired or recorded, names a chosen node."""
    found = set()
    for name, node in state.nodes.items():
        desired = plan.desired.get(name)
        if name in chosen or desired is None:
            continue
        if _names_any(node.wiring, chosen) or _names_any(desired.wiring, chosen):
            found.add(name)
    return found


def _force_replace(plan: Plan, state: State, names: list[str]) -> list[Action]:
    actions = {action.node: action for action in plan.actions}
    for name in names:
        if name not in plan.desired:
            raise ConfigError(f"--replace {name!r}: the node is being removed from the topology")
        current = actions.get(name)
        if current is not None and current.kind in (ActionKind.CREATE, ActionKind.REPLACE):
            continue  # created or replaced anyway
        provider = plan.desired[name].spec.provider
        actions[name] = Action(ActionKind.REPLACE, name, provider, (Reason.note(REPLACE_REASON),))
    for sender in sorted(_senders_to(plan, state, set(names))):
        moved = sorted(n for n in names if n in plan.desired[sender].peers)
        if not moved:
            continue
        note = peer_endpoint_changes(moved)
        current = actions.get(sender)
        if current is None:
            actions[sender] = Action(
                ActionKind.UPDATE, sender, plan.desired[sender].spec.provider, (note,)
            )
        elif current.kind is ActionKind.UPDATE and note not in current.reasons:
            actions[sender] = replace(current, reasons=(*current.reasons, note))
    return list(actions.values())


def narrow_plan(
    plan: Plan, state: State, *, targets: Sequence[str] = (), replace_nodes: Sequence[str] = ()
) -> Targeted:
    """``plan`` with ``replace_nodes`` forced to a replacement and, when ``targets`` are given,
    reduced to the targets and the rewiring of their neighbours."""
    known = set(plan.desired) | set(state.nodes)
    replaced = _expand(replace_nodes, known, "--replace")
    actions = _force_replace(plan, state, replaced) if replaced else list(plan.actions)
    if not targets:
        ordered = tuple(sorted(actions, key=lambda a: (_ORDER[a.kind], a.node)))
        return Targeted(replace(plan, actions=ordered), None, 0)
    chosen = set(_expand(targets, known, "--target")) | set(replaced)
    neighbours = _senders_to(plan, state, chosen) | _following(plan, state, chosen)
    neighbours -= chosen
    kept = [
        a
        for a in actions
        if a.node in chosen or (a.node in neighbours and a.kind is ActionKind.UPDATE)
    ]
    ordered = tuple(sorted(kept, key=lambda a: (_ORDER[a.kind], a.node)))
    return Targeted(
        replace(plan, actions=ordered), frozenset(chosen | neighbours), len(actions) - len(kept)
    )
