"""Plans as text a person reads and as JSON a program reads (pure).

Both render the planner's structured reasons (:mod:`codebolt_topo.plan.reasons`): the text its
sentences, the JSON its field, before, after and sentence. Sensitive values (``env``) are masked
unless ``show_sensitive``, so neither a terminal nor a CI log shows a secret by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codebolt_topo.plan.diff import ActionKind, Plan

__all__ = ["plan_as_json", "plan_as_text"]


def plan_as_text(plan: Plan, *, show_sensitive: bool = False) -> str:
    """Terraform-style lines: ``+`` create, ``~`` update, ``-/+`` replace, ``-`` destroy."""
    if not plan.has_changes:
        return f"No changes. Topology {plan.topology!r} matches the file."
    width = max(len(action.node) for action in plan.actions)
    lines = [f"Topology {plan.topology!r}: the following actions will be performed:", ""]
    for action in plan.actions:
        verb = {
            ActionKind.CREATE: "create",
            ActionKind.UPDATE: "update in place",
            ActionKind.REPLACE: "replace",
            ActionKind.DELETE: "destroy",
        }[action.kind]
        lines.append(
            f"  {action.kind.symbol:>3} {action.node:<{width}}  ({action.provider}) {verb}"
        )
        for reason in action.reasons:
            lines.append(f"        {reason.shown(show_sensitive=show_sensitive).message}")
        desired = plan.desired.get(action.node)
        placed = plan.placements.get(action.node)
        if placed is not None and placed.placed:
            lines.append(f"        placed on: {placed.describe()}")
        if desired is not None and action.kind in (ActionKind.CREATE, ActionKind.REPLACE):
            if desired.peers:
                lines.append(f"        sends work to: {_peers_text(desired.peers, desired.dials)}")
            if desired.gateway_active:
                lines.append(
                    f"        gateway: remote-execution (accepts work from "
                    f"{', '.join(desired.inbound) or 'admin only'})"
                )
    lines.append("")
    lines.append(
        f"Plan: {plan.count(ActionKind.CREATE)} to create, {plan.count(ActionKind.UPDATE)} to "
        f"update, {plan.count(ActionKind.REPLACE)} to replace, "
        f"{plan.count(ActionKind.DELETE)} to destroy."
    )
    return "\n".join(lines)


def plan_as_json(plan: Plan, *, show_sensitive: bool = False) -> dict[str, Any]:
    """The plan as data: each action with its reasons as ``{field, before, after, message}``,
    and each desired node's provider, peers, gateway and (placed by hybrid) placement."""
    return {
        "topology": plan.topology,
        "changes": plan.has_changes,
        "actions": [
            {
                "action": a.kind.value,
                "node": a.node,
                "provider": a.provider,
                "reasons": [r.as_json(show_sensitive=show_sensitive) for r in a.reasons],
            }
            for a in plan.actions
        ],
        "nodes": {name: _node_json(plan, name) for name in plan.desired},
    }


def _node_json(plan: Plan, name: str) -> dict[str, Any]:
    desired = plan.desired[name]
    node: dict[str, Any] = {
        "provider": desired.spec.provider,
        "peers": list(desired.peers),
        "gateway": "active" if desired.gateway_active else "inactive",
        "inbound": list(desired.inbound),
    }
    if desired.dials:  # an edge's dial where the file says; absent: auto, resolved at apply
        node["dials"] = dict(desired.dials)
    if name in plan.placements:
        node["placement"] = plan.placements[name].as_json()
    return node


def _peers_text(peers: Sequence[str], dials: Mapping[str, str]) -> str:
    """``b, c (c dials in)``: the peers, with who opens the link where the file says so."""
    return ", ".join(f"{p} ({p} dials in)" if dials.get(p) == "receiver" else p for p in peers)
