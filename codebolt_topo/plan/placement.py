"""Where a provider that places nodes on other providers (hybrid) will put each node, known at
plan time (pure).

``plan`` must say what ``apply`` will do: a hybrid node with ``count: 3`` and room for two on
its only placement used to plan "3 to create" and fail one at apply. A placing provider
forecasts each node it is to create (:class:`Forecast`: the provider and the entry of its
placement list, or every entry's refusal); the plan shows where each goes, refuses at plan time
a node no entry can take (:func:`check_placements`, located at its ``placement:``), and apply
starts each node on the entry the plan showed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from codebolt_topo.errors import TopologyError, ValidationIssue
from codebolt_topo.model.source import SourceMap

__all__ = ["Forecast", "check_placements"]


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where ``node`` goes: ``provider`` by entry ``entry`` of its placement list (both None
    when no entry can take it), and why each entry before it (or every entry) was passed over."""

    node: str
    provider: str | None
    entry: int | None
    refusals: tuple[str, ...] = ()

    @property
    def placed(self) -> bool:
        return self.provider is not None

    def describe(self) -> str:
        """``docker (placement[1])``, as the plan text shows it."""
        return f"{self.provider} (placement[{self.entry}])"

    def as_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "entry": self.entry, "refusals": list(self.refusals)}


def _written(node: str, sources: SourceMap) -> str:
    """The node name as the file writes it: a replica ``w-2`` of ``w: {count: 3}`` is ``w``."""
    if ("nodes", node) in sources.spans:
        return node
    base = re.sub(r"-\d+$", "", node)
    return base if ("nodes", base) in sources.spans else node


def check_placements(forecasts: Iterable[Forecast], sources: SourceMap) -> None:
    """Raise one :class:`TopologyError` naming every node no placement entry can take, at the
    node's ``placement:`` with each entry's reason and a hint."""
    issues = []
    for forecast in forecasts:
        if forecast.placed:
            continue
        field = f"nodes.{_written(forecast.node, sources)}.placement"
        why = "; ".join(forecast.refusals) or "its placement list is empty"
        issues.append(
            ValidationIssue(
                sources.locate(field),
                field,
                f"node {forecast.node!r} cannot be placed: {why}; hint: raise a max_nodes, "
                "add a placement entry, or lower count",
            )
        )
    if issues:
        raise TopologyError(issues)
