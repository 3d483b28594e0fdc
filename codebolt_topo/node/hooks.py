"""Hook specifications for node plugins (pluggy project ``codebolt_node``).

A node plugin is any object with methods named after these specs and marked with
:data:`hookimpl`; it is found through the entry point group ``codebolt_topo.node_plugins``
(built-in and third-party plugins alike) and registered when a ``configure`` push enables it.

Pluggy always calls hooks with keyword arguments, so a spec may grow new arguments without
breaking implementations that ignore them: implement only the parameters you need. (pluggy does
not pass Python keyword-only parameters, hence the plain parameters below.)

Hooks run on the node's event loop: they must not block. Exceptions from ``enable`` abort the
``configure`` push that enabled the plugin; exceptions from the other hooks are logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from codebolt_topo.node.gateway import ExecutionGateway

__all__ = ["PROJECT", "NodeContext", "NodeHookSpecs", "hookimpl", "hookspec"]

PROJECT = "codebolt_node"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What a plugin may see and use of the node hosting it."""

    name: str
    topology: str
    workspace: Path
    execution_gateway: ExecutionGateway
    logger: logging.Logger
    state_dir: Path | None = None
    """The node's own directory (its launch config, its log): where a plugin keeps its files."""
    job_env: dict[str, str] = field(default_factory=dict)
    """Environment every job started from now on inherits: a plugin may add the variables that
    tell jobs how to reach it, and must remove them when disabled."""


class NodeHookSpecs:
    """The hooks a node calls. Every one is optional for an implementation."""

    @hookspec
    def codebolt_node_enable(self, node: NodeContext, name: str, settings: dict[str, Any]) -> None:
        """The plugin registered as ``name`` was enabled with ``settings``.

        Claim gateways here (a second claimant gets :class:`~codebolt_topo.node.gateway.
        GatewayError`, which aborts the push). Called only on the plugin being enabled.
        """

    @hookspec
    def codebolt_node_settings(
        self, node: NodeContext, name: str, settings: dict[str, Any]
    ) -> None:
        """A ``configure`` push changed the settings of this already enabled plugin."""

    @hookspec
    def codebolt_node_disable(self, node: NodeContext, name: str) -> None:
        """The plugin is being disabled: release every gateway it claimed. Called only on it."""

    @hookspec(firstresult=True)
    def codebolt_node_admit(
        self, node: NodeContext, principal: str, request: dict[str, Any]
    ) -> str | None:
        """Return a reason to refuse an ``exec`` from a peer ``principal`` (first answer wins).

        Called after the gateway check, for peer principals only; None admits the request.
        """

    @hookspec
    def codebolt_node_job_started(self, node: NodeContext, request_id: str, pid: int) -> None:
        """A job of ``request_id`` started locally as process ``pid``."""

    @hookspec
    def codebolt_node_job_ended(
        self, node: NodeContext, request_id: str, exit: dict[str, Any]
    ) -> None:
        """A local job ended; ``exit`` is the ``exit`` message sent upstream."""

    @hookspec
    def codebolt_node_notification(
        self, node: NodeContext, request_id: str, kind: str, data: Any
    ) -> None:
        """A ``notify`` travelling down reached this node, which runs the job it names."""
