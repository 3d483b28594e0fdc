"""A provider that exists only in the tests: one package and one entry point, nothing else.

It proves that a provider brings its own part of topology.yaml without a line changed in
``codebolt_topo.model`` or ``codebolt_topo.plan``: a ``toy:`` block on its nodes (refused on
anyone else's, required on its own), and a check of the whole topology that ``validate`` reports
at the file, line and column of the flavour it dislikes. It registers its provider class
directly (a :class:`Provider` is its own rules); its nodes live in memory only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from codebolt_topo.model.settings import NodeSettings, SettingsBlock
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.provider_checks import Finding, TopologyView
from codebolt_topo.providers.base import (
    Category,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)

__all__ = ["MENU", "Scoop", "ToyProvider", "ToySettings"]

MENU = ("vanilla", "chocolate")


class Scoop(SettingsBlock):
    """What a toy node serves."""

    flavour: str = Field(min_length=1, description="The flavour served.")
    cones: int = Field(1, ge=1, description="Cones at once.")


class ToySettings(NodeSettings):
    """The node field the toy provider adds: ``toy:``."""

    refusal: ClassVar[str] = "{fields}: only provider: toy serves toys"

    toy: Scoop | None = Field(None, description="What a toy node serves (toy only).")


class ToyProvider(Provider):
    """Nodes that exist as entries in a dict."""

    name: ClassVar[str] = "toy"
    category: ClassVar[Category] = Category.LOCAL
    settings: ClassVar[type[NodeSettings] | None] = ToySettings

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.alive: set[int] = set()
        self._ids = itertools.count(1)

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        if ToySettings.of(spec).toy is None:
            return "toy: a toy node needs a toy block (at least flavour)"
        return None

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterator[Finding]:
        for name, spec in view.topology.nodes.items():
            scoop = ToySettings.of(spec).toy
            if scoop is not None and scoop.flavour not in MENU:
                yield Finding(
                    f"nodes.{name}.toy.flavour",
                    f"flavour {scoop.flavour!r} is off the menu ({', '.join(MENU)})",
                )

    async def create(self, launch: NodeLaunch) -> Placement:
        handle_id = next(self._ids)
        self.alive.add(handle_id)
        return Placement(handle={"id": handle_id}, host="127.0.0.1", port=1)

    async def inspect(self, handle: dict[str, Any]) -> Observation:
        return Observation(alive=handle.get("id") in self.alive)

    async def destroy(self, handle: dict[str, Any], *, grace: float = 5.0) -> None:
        self.alive.discard(handle.get("id", -1))
