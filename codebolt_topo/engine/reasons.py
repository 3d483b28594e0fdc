"""Plan reasons as the engine shows and records them: ``env`` values masked unless asked.

The planner makes each reason structured (:class:`~codebolt_topo.plan.reasons.Reason`: field,
before, after, the sentence) and knows which values are sensitive; this module is where the
engine's views pick what to show: the plan a confirmation prompt or a saved plan shows, the JSON
document of ``plan --json``, and the one line the events journal and ``watch`` reports record
(always masked: nobody should find an API key in a log because a plan changed it).
"""

from __future__ import annotations

from typing import Any

from codebolt_topo.plan.diff import Action, Plan
from codebolt_topo.plan.reasons import Reason
from codebolt_topo.plan.render import plan_as_json

__all__ = ["Reason", "masked_plan", "one_line", "plan_document"]


def masked_plan(plan: Plan, *, show_sensitive: bool = False) -> Plan:
    """``plan`` as it may be shown: sensitive values masked unless ``show_sensitive``."""
    return plan if show_sensitive else plan.masked()


def plan_document(plan: Plan, *, show_sensitive: bool = False) -> dict[str, Any]:
    """``plan --json``: each reason as ``{field, before, after, message}``."""
    return plan_as_json(plan, show_sensitive=show_sensitive)


def one_line(action: Action) -> str:
    """The reasons of ``action`` in one line, masked (what the journal and reports record)."""
    return "; ".join(action.masked().messages)
