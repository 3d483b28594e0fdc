"""What the model asks of a provider: the rules its nodes follow in topology.yaml.

Defined here, below every provider, so that :mod:`codebolt_topo.model` never imports one: the
model finds providers through the ``codebolt_topo.providers`` entry points
(:mod:`codebolt_topo.model.discovery`) and only calls what :class:`NodeRules` names. A provider
implements it with class attributes and class methods (``codebolt_topo.providers.rules`` gives
the defaults), in a module light enough to import on every ``validate``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from codebolt_topo.model.settings import NodeSettings
    from codebolt_topo.model.topology import NodeSpec

__all__ = ["Category", "NodeRules"]


class Category(StrEnum):
    """Where a provider's nodes run; also the order providers are listed in (nearest first,
    then the ones that place nodes on the others)."""

    LOCAL = "local"
    CLOUD = "cloud"
    HYBRID = "hybrid"


@runtime_checkable
class NodeRules(Protocol):
    """A provider's part in loading a topology file."""

    #: The name nodes give in ``provider:``.
    name: str
    category: Category
    #: The node fields this provider adds (None: it adds none).
    settings: type[NodeSettings] | None
    #: Other providers (by name) whose settings this provider's nodes may carry: hybrid passes
    #: docker's container settings on to its placements; a swarm provider would honour them.
    accepts: frozenset[str]

    def check_node(self, spec: NodeSpec) -> str | None:
        """What a node of this provider lacks or may not have (a sentence starting with the
        field to change), or None."""
        ...
