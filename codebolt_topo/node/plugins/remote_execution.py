"""The RemoteExecutionPlugin: while enabled, peers may run and route work through this node.

It holds the node's ExecutionGateway for as long as it is enabled. Its settings may carry
``allow``: a list of peer principals; when present, other peers are refused even though the
gateway is active (the admin principal is never affected).
"""

from __future__ import annotations

from typing import Any

from codebolt_topo.node.hooks import NodeContext, hookimpl

__all__ = ["RemoteExecutionPlugin"]


class RemoteExecutionPlugin:
    """Claims the ExecutionGateway on enable and releases it on disable."""

    def __init__(self) -> None:
        self.name = "remote-execution"
        self.allow: frozenset[str] | None = None

    @hookimpl
    def codebolt_node_enable(self, node: NodeContext, name: str, settings: dict[str, Any]) -> None:
        self.name = name
        self._read(settings)
        node.execution_gateway.claim(name)

    @hookimpl
    def codebolt_node_settings(self, settings: dict[str, Any]) -> None:
        self._read(settings)

    @hookimpl
    def codebolt_node_disable(self, node: NodeContext, name: str) -> None:
        if node.execution_gateway.claimant == name:
            node.execution_gateway.release(name)

    @hookimpl
    def codebolt_node_admit(self, node: NodeContext, principal: str) -> str | None:
        if self.allow is None or principal in self.allow:
            return None
        return f"node {node.name!r} does not accept remote execution from {principal!r}"

    def _read(self, settings: dict[str, Any]) -> None:
        allow = settings.get("allow")
        self.allow = None if allow is None else frozenset(str(p) for p in allow)
