"""The docker provider's rules: the edges its containers cannot use, and what a sandbox may not
mount, each reported at the line to fix rather than as a refused connection at the first exec.

A container reaches this machine through the Docker host gateway, so a node listening on this
machine's loopback (the default ``host``) is out of its reach; a sandbox reaches nothing off its
own network. A sandbox exists to keep untrusted code off the host: a host directory mounted into
it (``/run`` holds the engine's socket, ``~`` the user's keys) undoes that, read-only or not.
Named volumes stay allowed; they hold only what the topology put there.

Docker nodes do not set ``host_network``: their daemons listen inside their containers. An
explicit ``port`` is published on ``127.0.0.1:<port>`` here though (``publishes_host_ports``),
so two docker nodes, or a docker and a local node, given one ``port`` clash, and ``validate``
says so instead of the engine refusing the second container at apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.model.settings import NodeSettings
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.plan.provider_checks import Finding, TopologyView
from codebolt_topo.providers.docker.settings import ContainerSettings, is_host_mount
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.providers.base import Provider

__all__ = ["DockerRules"]


class DockerRules(ProviderRules):
    """Node daemons in containers of the node image, on a per-topology network."""

    name: ClassVar[str] = "docker"
    category: ClassVar[Category] = Category.LOCAL
    settings: ClassVar[type[NodeSettings] | None] = ContainerSettings
    publishes_host_ports: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("docker",)
    extra: ClassVar[str | None] = "docker"

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterator[Finding]:
        yield from cls._unreachable_edges(view)
        yield from cls._sandbox_host_mounts(view)

    @classmethod
    def _unreachable_edges(cls, view: TopologyView) -> Iterator[Finding]:
        """Edges from a container to a node on this machine's network it cannot reach."""
        nodes = view.topology.nodes
        for edge in view.edges:
            source, target = nodes.get(edge.source), nodes.get(edge.target)
            if source is None or target is None or source.provider != cls.name:
                continue
            target_rules = view.rules_of(target)
            if target_rules is None or not target_rules.host_network:
                continue
            if ContainerSettings.of(source).sandbox:
                yield Finding(
                    edge.field,
                    (
                        f"edge {edge}: sandbox node {edge.source!r} cannot send work to a node on "
                        "this machine (its network reaches only the topology's containers); "
                        "reverse the edge or make the target a docker node"
                    ),
                )
            elif is_loopback(target.host) and edge.dial != "receiver":
                # dial: receiver: the node here dials the container's published port instead.
                yield Finding(
                    f"nodes.{edge.target}.host",
                    (
                        f"node {edge.target!r} listens on {target.host}, which docker node "
                        f"{edge.source!r} cannot reach (edge {edge}); set host: 0.0.0.0 (every "
                        "connection still needs a token) or the Docker bridge's address, or let "
                        f"{edge.target!r} dial the container (dial: receiver)"
                    ),
                )

    @classmethod
    def _sandbox_host_mounts(cls, view: TopologyView) -> Iterator[Finding]:
        """Host directories mounted into a sandbox, whichever provider carries it."""
        for name, spec in view.topology.nodes.items():
            settings = ContainerSettings.of(spec)
            if not settings.sandbox:
                continue
            for index, entry in enumerate(settings.volumes):
                if is_host_mount(entry):
                    yield Finding(
                        f"nodes.{name}.volumes[{index}]",
                        (
                            f"sandbox node {name!r} may not mount host directory "
                            f"{entry.split(':', 1)[0]!r}; use a named volume (NAME:/path) or drop "
                            "sandbox: true"
                        ),
                    )

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.docker.provider import DockerProvider

        return DockerProvider
