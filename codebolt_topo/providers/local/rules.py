"""The local provider's rules: its daemons listen on this machine's own interfaces, so their
ports clash (checked by the planner for every such provider), and one listening beyond
loopback (``host: 0.0.0.0``, an address of this machine) serves TLS: other machines reach it
(a joined developer's laptop), and every link that leaves a host is encrypted."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.providers.base import Provider

__all__ = ["LocalRules"]


class LocalRules(ProviderRules):
    """Node daemons as processes on this machine."""

    name: ClassVar[str] = "local"
    category: ClassVar[Category] = Category.LOCAL
    host_network: ClassVar[bool] = True

    @classmethod
    def serves_tls_for(cls, spec: NodeSpec) -> bool:
        return not is_loopback(spec.host)

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.local.provider import LocalProvider

        return LocalProvider
