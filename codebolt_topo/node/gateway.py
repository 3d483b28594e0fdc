"""The ExecutionGateway: the switch that lets peers run work on this node.

Lazy routing: a node executes or forwards requests from peer principals only while a plugin
claims its gateway (the RemoteExecutionPlugin does, and the planner enables it exactly on nodes
with inbound edges). Requests from the ``admin`` principal never need the gateway.
"""

from __future__ import annotations

from codebolt_topo.errors import TopoError

__all__ = ["ExecutionGateway", "GatewayError"]


class GatewayError(TopoError):
    """A plugin claimed a gateway someone else holds, or released one it does not hold."""


class ExecutionGateway:
    """Exclusively claimable by one owner (a plugin name) at a time."""

    __slots__ = ("_claimant", "node")

    def __init__(self, node: str) -> None:
        self.node = node
        self._claimant: str | None = None

    @property
    def claimant(self) -> str | None:
        """Who holds the gateway, or None."""
        return self._claimant

    @property
    def active(self) -> bool:
        """True while some plugin holds the gateway."""
        return self._claimant is not None

    def claim(self, owner: str) -> None:
        """Take the gateway for ``owner``; claiming it again as the same owner is a no-op."""
        if self._claimant is not None and self._claimant != owner:
            raise GatewayError(
                f"node {self.node!r}: ExecutionGateway is already claimed by "
                f"{self._claimant!r}; {owner!r} cannot claim it"
            )
        self._claimant = owner

    def release(self, owner: str) -> None:
        """Give the gateway back; only its claimant may."""
        if self._claimant != owner:
            raise GatewayError(f"node {self.node!r}: {owner!r} does not hold the ExecutionGateway")
        self._claimant = None

    def refusal(self) -> str | None:
        """Why a peer's request is refused now (None while the gateway is active)."""
        if self.active:
            return None
        return (
            f"node {self.node!r} does not accept remote execution: no plugin claims its "
            "ExecutionGateway (enable the remote-execution plugin)"
        )
