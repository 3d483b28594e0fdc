"""Hybrid's node settings: the ``placement:`` list of providers to try, each entry with
overrides for that provider only, and the node as each entry would launch it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Discriminator, Field, StringConstraints, Tag, model_validator

from codebolt_topo.model.nodes import node_model
from codebolt_topo.model.settings import NodeSettings, SettingsBlock
from codebolt_topo.model.topology import NodeSpec

__all__ = [
    "PLACEMENT_FIXED",
    "PlacementEntry",
    "PlacementItem",
    "PlacementSettings",
    "placed_spec",
    "placement_entries",
]


#: Node fields a hybrid placement entry may override: how the node is launched, not what it is.
PLACEMENT_FIXED = ("provider", "placement", "count", "requires", "restart", "heartbeat", "plugins")


class PlacementEntry(SettingsBlock):
    """One provider a hybrid node may be placed on, with settings for that provider only."""

    provider: str = Field(min_length=1, description="Provider name (local, docker, cloud-vm…).")
    max_nodes: int | None = Field(
        None,
        ge=1,
        description="Most nodes of this topology hybrid places on this provider; then the next.",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Node settings used when placed here (image, ssh, env, port…), replacing "
        "the node's own.",
    )

    @model_validator(mode="after")
    def _overridable(self) -> PlacementEntry:
        if self.provider == "hybrid":
            raise ValueError("provider: a hybrid placement cannot place on hybrid")
        fixed = sorted(set(self.overrides) & set(PLACEMENT_FIXED))
        if fixed:
            raise ValueError(f"overrides: {', '.join(fixed)} belong to the node, not a placement")
        return self


def _placement_item_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, dict | PlacementEntry):
        return "<entry>"
    return None


#: ``local`` or ``{provider: docker, max_nodes: 2, overrides: {...}}``.
PlacementItem = Annotated[
    Annotated[Annotated[str, StringConstraints(min_length=1)], Tag("<name>")]
    | Annotated[PlacementEntry, Tag("<entry>")],
    Discriminator(
        _placement_item_kind,
        custom_error_type="placement_item",
        custom_error_message="a placement is a provider name or {provider: NAME, max_nodes: N, "
        "overrides: {...}}",
    ),
]


class PlacementSettings(NodeSettings):
    """The node field hybrid adds: ``placement:``, required on its nodes, refused on others."""

    refusal: ClassVar[str] = "{fields}: only provider: hybrid uses a placement list"

    placement: list[PlacementItem] = Field(
        default_factory=list,
        description="Providers a hybrid node tries in order: the first that offers every "
        "requires:, has room and starts the node places it (hybrid only).",
    )


def placement_entries(spec: NodeSpec) -> list[PlacementEntry]:
    """The placement list with bare provider names as entries without overrides."""
    return [
        PlacementEntry(provider=entry) if isinstance(entry, str) else entry
        for entry in PlacementSettings.of(spec).placement
    ]


def placed_spec(spec: NodeSpec, index: int) -> NodeSpec:
    """The node as placement entry ``index`` would launch it: its provider, the node's own
    settings, then the entry's overrides (validated like any node)."""
    entry = placement_entries(spec)[index]
    values = spec.model_dump(exclude_unset=True, by_alias=True, exclude={"placement"})
    values.update(entry.overrides, provider=entry.provider)
    return node_model().model_validate(values)  # any installed provider's settings
