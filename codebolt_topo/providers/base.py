"""The one interface every provider implements.

A provider turns a :class:`NodeLaunch` into a running node daemon and can later tell whether it
is still there, and stop it. It does not know about edges, routes or tokens beyond handing the
launch configuration to the daemon: wiring is the engine's job, done over the node protocol the
same way for every provider. That is what keeps local, docker and cloud nodes interchangeable.

What a provider says about topology files (its settings, its checks) is its rules
(:class:`~codebolt_topo.providers.rules.ProviderRules`), which :class:`Provider` derives from.

Long steps of a provider (building wheels, uploading them, creating a sandbox) are reported
through ``ProviderContext.progress`` as ``<node>: <step>…`` lines, which the CLI times. A node's
log, wherever the node runs, is read through :meth:`Provider.logs` (``codebolt logs``).

Each provider records a *handle* per node in the state file (pid and start time, container id,
sandbox id…): JSON the engine stores and hands back without reading it. A provider declares its
shape as a TypedDict and is generic in it (``class LocalProvider(Provider[LocalHandle])``), so
its own code is checked against it; the engine holds ``Provider`` of any handle.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic

from typing_extensions import TypeVar

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.rules import Category
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.diff import Plan
from codebolt_topo.plan.placement import Forecast
from codebolt_topo.providers.rules import ProviderRules
from codebolt_topo.wire.config import LaunchConfig

__all__ = [
    "Category",
    "Discovered",
    "HandleT",
    "LogsNotOffered",
    "NodeLaunch",
    "Observation",
    "Placement",
    "Provider",
    "ProviderContext",
]


#: The handle a provider records for a node (a TypedDict); ``Provider`` alone means any handle.
HandleT = TypeVar("HandleT", bound=Mapping[str, Any], default=Any)


def _quiet(message: str) -> None:
    """Progress nobody listens to."""


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """Where a provider may keep files, how to label what it creates, and where it reports the
    steps of a long operation (``progress("<node>: uploading 23 wheels")``: a message whose
    first word ends in "ing" opens a step the CLI times, the node's next message closes it)."""

    topology: str
    lineage: str
    runtime_dir: Path
    base_dir: Path = field(default_factory=Path.cwd)
    progress: Callable[[str], None] = _quiet

    def markers(self, node: str) -> dict[str, str]:
        """The environment markers a node's process (or container, service, task) carries, so
        that a later run recognises it as this topology's and lineage's: adopted, or removed as
        what an interrupted run left."""
        return {
            "CODEBOLT_TOPOLOGY": self.topology,
            "CODEBOLT_NODE": node,
            "CODEBOLT_LINEAGE": self.lineage,
        }

    def step(self, node: str, what: str) -> None:
        """Report that ``node`` now does ``what`` (``uploading 23 wheels``)."""
        self.progress(f"{node}: {what}")


class LogsNotOffered(ConfigError):
    """The provider keeps its nodes' logs where they run and cannot read them from here."""


@dataclass(frozen=True, slots=True)
class NodeLaunch:
    """Everything needed to start one node; ``placement`` is the entry of its placement list
    the plan chose, for providers that place nodes on others (None: choose now)."""

    name: str
    spec: NodeSpec
    config: LaunchConfig
    placement: int | None = None


@dataclass(frozen=True, slots=True)
class Placement(Generic[HandleT]):
    """A started node: how the provider finds it again, and where the orchestrator reaches it."""

    handle: HandleT
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Discovered(Generic[HandleT]):
    """A node found by its markers: which node it claims to be, and its handle (the keys a
    provider can find again; ``create`` may have recorded more)."""

    node: str
    handle: HandleT

    def same_as(self, handle: Mapping[str, Any]) -> bool:
        """Whether ``handle`` (from the state file) designates this very resource."""
        return all(handle.get(key) == value for key, value in self.handle.items() if key != "dir")


class Provider(ProviderRules, abc.ABC, Generic[HandleT]):
    """Base class of providers. Subclasses set the class attributes and the async methods."""

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @classmethod
    def provider_class(cls) -> type[Provider]:
        """A provider class registered directly is its own rules and its own provider class."""
        return cls

    @abc.abstractmethod
    async def create(self, launch: NodeLaunch) -> Placement[HandleT]:
        """Start the node and return once its ProviderServer accepts connections."""

    @abc.abstractmethod
    async def inspect(self, handle: HandleT) -> Observation:
        """Whether the node behind ``handle`` is still alive, without side effects."""

    @abc.abstractmethod
    async def destroy(self, handle: HandleT, *, grace: float = 5.0) -> None:
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

    async def logs(self, handle: HandleT, *, follow: bool) -> AsyncIterator[str]:
        """The lines of the node's log as they are (oldest first, without their newline), then,
        with ``follow``, each new line as it is written, until the caller stops iterating.

        A local node's log is a file the engine reads itself (``handle["dir"]/node.log``); a
        provider whose nodes run elsewhere (a container, a VM, a sandbox) overrides this. The
        default raises :class:`LogsNotOffered`."""
        raise LogsNotOffered(f"provider {self.name!r} does not offer its nodes' logs")
        yield ""  # an async generator, like the overrides  # pragma: no cover

    async def forecast(self, plan: Plan, state: State) -> list[Forecast]:
        """Where this provider will place each node ``plan`` creates or replaces with it, when
        it places nodes on other providers (hybrid): the plan shows it and refuses a node no
        placement can take. ``state`` is what the plan was made from. Others place a node where
        they run it: nothing to forecast."""
        return []

    async def discover(self) -> list[Discovered[HandleT]]:
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
