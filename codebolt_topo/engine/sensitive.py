"""Values a screen or a log must not show unless asked: the ``env`` of nodes.

Environment variables are where API keys and passwords end up, so plan reasons and ``describe``
name the variables that changed but show their values as :data:`MASK`, as Terraform does for
sensitive values; ``--show-sensitive`` shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codebolt_topo.plan.reasons import MASK, SENSITIVE_KEYS

__all__ = ["MASK", "SENSITIVE_KEYS", "mask_settings"]

# Which settings are sensitive, and how a masked value reads, is the planner's to say: plan
# reasons are masked there (codebolt_topo.plan.reasons).


def mask_settings(settings: Mapping[str, Any], *, show: bool = False) -> dict[str, Any]:
    """``settings`` with each sensitive mapping's values replaced by :data:`MASK` (keys kept,
    so what is set stays visible)."""
    result = dict(settings)
    if show:
        return result
    for key in SENSITIVE_KEYS:
        value = result.get(key)
        if isinstance(value, Mapping):
            result[key] = {name: MASK for name in value}
    return result
