"""Plans as text a person reads and as JSON a program reads (pure)."""

from __future__ import annotations

from typing import Any

from codebolt_topo.plan.diff import ActionKind, Plan

__all__ = ["plan_as_json", "plan_as_text"]


def plan_as_text(plan: Plan) -> str:
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
            lines.append(f"        {reason}")
        desired = plan.desired.get(action.node)
        if desired is not None and action.kind in (ActionKind.CREATE, ActionKind.REPLACE):
            if desired.peers:
                lines.append(f"        sends work to: {', '.join(desired.peers)}")
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


def plan_as_json(plan: Plan) -> dict[str, Any]:
    return {
        "topology": plan.topology,
        "changes": plan.has_changes,
        "actions": [
            {
                "action": a.kind.value,
                "node": a.node,
                "provider": a.provider,
                "reasons": list(a.reasons),
            }
            for a in plan.actions
        ],
        "nodes": {
            name: {
                "provider": d.spec.provider,
                "peers": list(d.peers),
                "gateway": "active" if d.gateway_active else "inactive",
                "inbound": list(d.inbound),
            }
            for name, d in plan.desired.items()
        },
    }
