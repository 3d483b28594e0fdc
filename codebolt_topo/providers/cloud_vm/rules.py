"""The cloud-vm provider's rules: its nodes need an ``ssh:`` block (the host they run on)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.model.settings import NodeSettings
from codebolt_topo.providers.cloud_vm.settings import CloudVmSettings
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.providers.base import Provider

__all__ = ["CloudVmRules"]


class CloudVmRules(ProviderRules):
    """Node daemons on SSH hosts the topology lists."""

    name: ClassVar[str] = "cloud-vm"
    category: ClassVar[Category] = Category.CLOUD
    settings: ClassVar[type[NodeSettings] | None] = CloudVmSettings
    needs: ClassVar[tuple[str, ...]] = ("asyncssh",)
    extra: ClassVar[str | None] = "cloud-vm"
    #: Its daemons run on other machines: every link to them leaves this host (TLS).
    serves_tls: ClassVar[bool] = True

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        if CloudVmSettings.of(spec).ssh is None:
            return "ssh: a cloud-vm node needs ssh settings (at least host)"
        return None

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.cloud_vm.provider import CloudVmProvider

        return CloudVmProvider
