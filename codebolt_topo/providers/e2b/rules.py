"""The e2b provider's rules: its nodes may carry an ``e2b:`` block (defaults otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.model.settings import NodeSettings
from codebolt_topo.providers.e2b.settings import E2bNodeSettings
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.providers.base import Provider

__all__ = ["E2bRules"]


class E2bRules(ProviderRules):
    """Node daemons in e2b sandboxes."""

    name: ClassVar[str] = "e2b"
    category: ClassVar[Category] = Category.CLOUD
    settings: ClassVar[type[NodeSettings] | None] = E2bNodeSettings
    needs: ClassVar[tuple[str, ...]] = ("e2b",)
    extra: ClassVar[str | None] = "e2b"

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.e2b.provider import E2bProvider

        return E2bProvider
