"""The one interface every provider implements.

A provider turns a :class:`NodeLaunch` into a running node daemon and can later tell whether it
is still there, and stop it. It does not know about edges, routes or tokens beyond handing the
launch configuration to the daemon: wiring is the engine's job, done over the node protocol the
same way for every provider. That is what keeps local, docker and cloud nodes interchangeable.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from codebolt_topo.model.state import NodeState
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.node.config import LaunchConfig

__all__ = [
    "Category",
    "Discovered",
    "NodeLaunch",
    "Observation",
    "Placement",
    "Provider",
    "ProviderContext",
]


class Category(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """Where a provider may keep files, and how to label what it creates."""

    topology: str
    lineage: str
    runtime_dir: Path
    base_dir: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True, slots=True)
class NodeLaunch:
    """Everything needed to start one node."""

    name: str
    spec: NodeSpec
    config: LaunchConfig


@dataclass(frozen=True, slots=True)
class Placement:
    """A started node: how the provider finds it again, and where the orchestrator reaches it."""

    handle: dict[str, Any]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Discovered:
    """A node found by its markers: which node it claims to be, and its handle."""

    node: str
    handle: dict[str, Any]

    def same_as(self, handle: dict[str, Any]) -> bool:
        """Whether ``handle`` (from the state file) designates this very resource."""
        return all(handle.get(key) == value for key, value in self.handle.items() if key != "dir")


@dataclass(frozen=True, slots=True)
class Observation:
    """What a provider sees of a node right now."""

    alive: bool
    reason: str = ""
    #: The node is gone because it was stopped on request (a graceful daemon exit), not because
    #: it crashed: ``restart: on-failure`` leaves it stopped. False where a provider cannot tell.
    clean_exit: bool = False


class Provider(abc.ABC):
    """Base class of providers. Subclasses set the class attributes and the async methods."""

    name: ClassVar[str]
    category: ClassVar[Category]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: True when every node of this provider shares one host's port space (port clashes matter).
    shares_host_ports: ClassVar[bool] = False

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @abc.abstractmethod
    async def create(self, launch: NodeLaunch) -> Placement:
        """Start the node and return once its ProviderServer accepts connections."""

    @abc.abstractmethod
    async def inspect(self, handle: dict[str, Any]) -> Observation:
        """Whether the node behind ``handle`` is still alive, without side effects."""

    @abc.abstractmethod
    async def destroy(self, handle: dict[str, Any], *, grace: float = 5.0) -> None:
        """Stop the node (gracefully, then by force after ``grace`` s) and remove what create made.

        Must succeed when the node is already gone.
        """

    @classmethod
    def base_offers(cls) -> tuple[frozenset[str], dict[str, str]]:
        """Capabilities every node of this provider gets, as far as can be told without
        placing one, and for the usual ones it will not get, why."""
        return frozenset(cls.capabilities), {}

    def offers(self, spec: NodeSpec) -> tuple[frozenset[str], dict[str, str]]:
        """Capabilities a node placed with ``spec`` will have (declared ones included), and
        why the usual missing ones are missing (shown when a ``requires:`` is unmet)."""
        offered, reasons = self.base_offers()
        return offered | frozenset(spec.capabilities), reasons

    async def has_room(self, spec: NodeSpec) -> bool:
        """Whether this provider can take one more node like ``spec`` now (a quota, a full
        host). Hybrid placement skips a provider without room; others place regardless."""
        return True

    async def discover(self) -> list[Discovered]:
        """Every node this provider runs for this topology instance (same topology name and
        lineage), found by the labels or markers ``create`` put on it, whether or not the
        state file knows about it. Lets a run interrupted by SIGKILL be cleaned up by the next.
        """
        return []

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """The URL at which ``sender``, a node of *this* provider, reaches ``peer`` (any
        provider's node); None when it cannot (the engine reports that edge as unusable).

        The engine asks the provider of the node that sends work, because only it knows where its
        nodes stand: a container reaches a sibling container by name on their network and the
        host through the host gateway, while this machine reaches both at ``peer.url``. The
        sender's own state (its handle: which host, which delegate placed it) is passed when
        known. The default suits providers whose nodes run on this machine's network.
        """
        return peer.url
