"""The swarm provider's rules: what a node on a swarm can be given, and which edges it can use,
each refused at the line to fix rather than as a task that never starts.

A swarm node honours docker's container settings (``image``, ``resources``, ``gpus``,
``sandbox``) except those that would tie it to one machine: ``volumes`` and ``workspace`` name
directories or volumes of whichever swarm node runs the task (a rescheduled task would find
another, and ``destroy`` could not remove a volume left on a worker), and ``gpus: all`` has no
meaning for the scheduler, which counts generic resources. Its tasks run on any machine of the
swarm, so they reach only the topology's other swarm services: an edge to a node on this
machine is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.model.rules import Category
from codebolt_topo.plan.provider_checks import Finding, TopologyView
from codebolt_topo.providers.docker.settings import ContainerSettings
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.providers.base import Provider

__all__ = ["SwarmRules"]


class SwarmRules(ProviderRules):
    """Node daemons as Swarm services of the node image, on a per-topology overlay network."""

    name: ClassVar[str] = "swarm"
    category: ClassVar[Category] = Category.CLOUD
    accepts: ClassVar[frozenset[str]] = frozenset({"docker"})
    needs: ClassVar[tuple[str, ...]] = ("docker",)
    extra: ClassVar[str | None] = "docker"

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        settings = ContainerSettings.of(spec)
        if settings.volumes:
            return (
                "volumes: a swarm node's volume would live on whichever swarm node runs its task "
                "(lost when it is rescheduled, left behind by destroy); remove volumes"
            )
        if spec.workspace is not None:
            return (
                "workspace: a swarm task runs on any machine of the swarm, not this one; remove "
                "workspace (each task gets its own)"
            )
        if settings.gpus == "all":
            return (
                "gpus: the swarm scheduler counts GPUs as generic resources; give a number "
                "(gpus: 1) instead of all"
            )
        return None

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterator[Finding]:
        nodes = view.topology.nodes
        for edge in view.edges:
            source, target = nodes.get(edge.source), nodes.get(edge.target)
            if source is None or target is None or source.provider != cls.name:
                continue
            if target.provider != cls.name:
                yield Finding(
                    edge.field,
                    (
                        f"edge {edge}: swarm node {edge.source!r} runs on any machine of the "
                        f"swarm and reaches only this topology's swarm services, not "
                        f"{target.provider} node {edge.target!r}; make the target a swarm node "
                        "or reverse the edge"
                    ),
                )

    @classmethod
    def provider_class(cls) -> type[Provider]:
        from codebolt_topo.providers.swarm.provider import SwarmProvider

        return SwarmProvider
