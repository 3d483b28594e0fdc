"""How a provider declares its settings: the node fields one provider adds to topology.yaml.

A provider declares them as a subclass of :class:`NodeSettings` whose class attributes are
pydantic ``Field(...)`` declarations, written like a model's fields. They become fields of every
node, exactly as written in the file (docker's are flat node fields such as ``image`` and
``sandbox``; cloud-vm's is one ``ssh:`` block), so the loader reports a typo in them like any
other, the JSON schema lists them, and the node's own provider decides whether they may be set
(see :mod:`codebolt_topo.model.nodes`). The provider reads them back, typed, with
:meth:`NodeSettings.of`.

The declaration is a plain class, not a pydantic model: the node model validates these fields,
so a model of their own would only be built to be taken apart (and building one costs every
``validate`` a millisecond or two per provider). Mappings inside the settings (``ssh:``,
``resources:``) are :class:`SettingsBlock` models.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, get_type_hints

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from codebolt_topo.model.topology import NodeSpec

__all__ = ["NodeSettings", "SettingsBlock"]


class SettingsBlock(BaseModel):
    """A mapping inside a provider's settings (``ssh:``, ``resources:``): strict and frozen like
    every part of topology.yaml, so a typo is an error, never a silently ignored key."""

    # Built with the node model that holds it (or when first used on its own), not at import.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class NodeSettings:
    """Fields a provider adds to every node; a node that sets none of them is unaffected.

    Subclasses declare each field as ``name: TYPE = Field(DEFAULT, description=...)``.
    """

    #: What a node whose provider does not accept these settings is told; ``{fields}`` is the
    #: comma-separated list of the ones it set.
    refusal: ClassVar[str] = "{fields}: not used by this node's provider"

    #: Whether :meth:`launch_settings` keeps ``None`` inside nested values. Hashes recorded in
    #: state files depend on it, so a provider never changes it once released.
    launch_keeps_none: ClassVar[bool] = False

    @classmethod
    def fields(cls) -> dict[str, FieldInfo]:
        """The declared fields, each with its annotation, in declaration order."""
        return _fields(cls)

    @classmethod
    def of(cls, spec: NodeSpec) -> Self:
        """These settings as ``spec`` sets them (defaults for a node model without them)."""
        settings = cls.__new__(cls)
        for name, default in _defaults(cls).items():
            setattr(settings, name, getattr(spec, name, default))
        return settings

    @classmethod
    def set_fields(cls, spec: NodeSpec) -> list[str]:
        """The fields ``spec`` sets to something other than their default, in field order."""
        return [
            name
            for name, default in _defaults(cls).items()
            if getattr(spec, name, default) != default
        ]

    @classmethod
    def launch_settings(cls, spec: NodeSpec) -> dict[str, Any]:
        """The set fields as JSON data, for the node's launch hash (empty when none is set, so
        a node that uses none keeps the hash it had before these settings existed)."""
        names = cls.set_fields(spec)
        if not names:
            return {}
        return spec.model_dump(
            mode="json", include=set(names), exclude_none=not cls.launch_keeps_none
        )

    @classmethod
    def check(cls, spec: NodeSpec) -> str | None:
        """What is wrong between these settings and the rest of ``spec`` (a sentence starting
        with the field to change), or None. Run on every node that sets them."""
        return None


def _fields(settings: type[NodeSettings]) -> dict[str, FieldInfo]:
    known = _FIELDS.get(settings)
    if known is not None:
        return known
    declared = {
        name: value for name, value in vars(settings).items() if isinstance(value, FieldInfo)
    }
    hints = get_type_hints(settings, include_extras=True)
    fields = _FIELDS[settings] = {
        name: FieldInfo.from_annotated_attribute(hints[name], value)
        for name, value in declared.items()
    }
    return fields


def _defaults(settings: type[NodeSettings]) -> dict[str, Any]:
    known = _DEFAULTS.get(settings)
    if known is None:
        known = _DEFAULTS[settings] = {
            name: info.get_default(call_default_factory=True)
            for name, info in _fields(settings).items()
        }
    return known


# Per declaration, computed once (a class is immutable once declared).
_FIELDS: dict[type[NodeSettings], dict[str, FieldInfo]] = {}
_DEFAULTS: dict[type[NodeSettings], dict[str, Any]] = {}
