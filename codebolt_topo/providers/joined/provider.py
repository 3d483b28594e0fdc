"""JoinedProvider: nodes that a developer runs with ``codebolt join`` on their own machine.

There is nothing here to start or stop: ``create`` records the node as joinable (the engine
then seals its launch config into an offer at its join point, engine/joining.py), ``destroy``
forgets it (its neighbours stop accepting its tokens when they are rewired or stopped), and
``inspect`` cannot look: the machine cannot be reached. Whether it is there is what its
neighbours see of the links it opened (``presence``), which ``status`` asks them.
"""

from __future__ import annotations

from typing import ClassVar

from codebolt_topo.model.discovery import rules_of
from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import NodeState
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.providers.base import NodeLaunch, Placement, Provider
from codebolt_topo.providers.joined.handle import JoinedHandle
from codebolt_topo.providers.joined.rules import JoinedRules
from codebolt_topo.wire.joining import JOIN_HOST

__all__ = ["JoinedProvider"]

_EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::", "[::]"})


class JoinedProvider(JoinedRules, Provider[JoinedHandle]):
    capabilities: ClassVar[frozenset[str]] = frozenset()

    async def create(self, launch: NodeLaunch) -> Placement[JoinedHandle]:
        self.context.step(
            launch.name, f"waiting to join (codebolt state credentials {launch.name})"
        )
        return Placement(handle={"joined": True}, host="", port=0)

    async def inspect(self, handle: JoinedHandle) -> Observation:
        return Observation(alive=True, reason="joins from its own machine")

    async def destroy(self, handle: JoinedHandle, *, grace: float = 5.0) -> None:
        """Nothing runs here; the machine that joined is cut off when its neighbours stop
        accepting its edge tokens (rewired without it, or stopped)."""

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        return self.url_of(peer)

    @staticmethod
    def url_of(peer: NodeState) -> str | None:
        """The URL at which a joined machine reaches ``peer``: a node listening on this
        machine's own interfaces, at its address, or at the address the developer was told to
        join at (:data:`JOIN_HOST`, rewritten by ``codebolt join``) when it listens on every
        interface. Nothing else can be reached from another machine."""
        bound = str(peer.launch.get("host") or peer.host or "")
        if peer.port is None or peer.url is None or is_loopback(bound):
            return None
        if not getattr(rules_of(peer.provider), "host_network", False):
            return None
        host = JOIN_HOST if bound in _EVERY_INTERFACE else bound
        host = f"[{host}]" if ":" in host else host
        return f"{peer.scheme}://{host}:{peer.port}"
