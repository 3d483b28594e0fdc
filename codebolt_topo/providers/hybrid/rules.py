"""The hybrid provider's rules: its nodes need a ``placement:`` list whose every entry, as it
would launch the node, is a valid node of the provider it names; container settings written on
the node itself pass on to every placement (each placement's provider then judges them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from pydantic import ValidationError

from codebolt_topo.model.discovery import rules_of
from codebolt_topo.model.rules import Category
from codebolt_topo.model.settings import NodeSettings
from codebolt_topo.plan.provider_checks import Finding, TopologyView, unavailable
from codebolt_topo.providers.hybrid.settings import (
    PlacementSettings,
    placed_spec,
    placement_entries,
)
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.providers.base import Provider

__all__ = ["HybridRules"]


class HybridRules(ProviderRules):
    """Places each node on the first provider of its placement list that can take it."""

    name: ClassVar[str] = "hybrid"
    category: ClassVar[Category] = Category.HYBRID
    settings: ClassVar[type[NodeSettings] | None] = PlacementSettings
    accepts: ClassVar[frozenset[str]] = frozenset({"docker"})

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        placement = PlacementSettings.of(spec).placement
        if not placement:
            return "placement: a hybrid node needs a list of providers to try"
        for index in range(len(placement)):
            try:
                placed_spec(spec, index)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                message = str(first["msg"]).removeprefix("Value error, ")
                return f"placement[{index}]: {where + ': ' if where else ''}{message}"
        return None

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterator[Finding]:
        """A placement entry naming a provider this install cannot run (its extra missing)."""
        for name, spec in view.topology.nodes.items():
            if spec.provider != cls.name:
                continue
            for index, entry in enumerate(placement_entries(spec)):
                problem = unavailable(rules_of(entry.provider))
                if problem is not None:
                    yield Finding(f"nodes.{name}.placement[{index}]", problem)

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.hybrid.provider import HybridProvider

        return HybridProvider
