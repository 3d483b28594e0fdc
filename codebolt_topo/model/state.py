"""The state file's schema: what apply created, where it lives, and how to reach it.

The state is the orchestrator's memory between runs. It holds tokens, so it is written 0600
(see :mod:`codebolt_topo.engine.statefile`). ``serial`` increases on every write that changes
something; ``lineage`` is fixed when the state is first created, so a state file from another
topology instance is never mistaken for this one.

Each node keeps its last lifecycle transitions, each with the reason the engine gave when it
moved the node (the start error of a failed start, the drift that made ``watch`` replace it), so
``state pull`` and ``describe`` can say why without the events journal. Reasons are optional:
state files written before they were recorded still load.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HISTORY_LIMIT",
    "REASON_LIMIT",
    "STATE_VERSION",
    "Lifecycle",
    "NodeState",
    "State",
    "TopologyCa",
    "Transition",
]

STATE_VERSION = 1
#: Longest reason a transition keeps (a start error quotes the daemon's log; the events
#: journal keeps it whole).
REASON_LIMIT = 2000
HISTORY_LIMIT = 20


class Lifecycle(StrEnum):
    """Where a node is in its life. FAILED is reachable from every other state."""

    CREATED = "CREATED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


_ALLOWED: dict[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.CREATED: frozenset({Lifecycle.STARTING, Lifecycle.STOPPED}),
    Lifecycle.STARTING: frozenset({Lifecycle.RUNNING, Lifecycle.STOPPING}),
    Lifecycle.RUNNING: frozenset({Lifecycle.STOPPING}),
    Lifecycle.STOPPING: frozenset({Lifecycle.STOPPED}),
    Lifecycle.STOPPED: frozenset({Lifecycle.STARTING}),
    Lifecycle.FAILED: frozenset({Lifecycle.STARTING, Lifecycle.STOPPING, Lifecycle.STOPPED}),
}


def can_transition(current: Lifecycle, target: Lifecycle) -> bool:
    """The one place that says which lifecycle moves are legal."""
    return target is Lifecycle.FAILED or target in _ALLOWED[current]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Transition(_Model):
    """One lifecycle move: the state entered, when, and why (None when not recorded)."""

    state: Lifecycle
    at: float = Field(default_factory=time.time)
    reason: str | None = Field(
        None, description="Why the node moved (a start error, drift, a plan's reasons)."
    )


class NodeState(_Model):
    """One node as the orchestrator last left it."""

    name: str
    provider: str
    lifecycle: Lifecycle = Lifecycle.CREATED
    history: list[Transition] = Field(default_factory=list)
    handle: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific handle: pid, container id, …"
    )
    host: str | None = Field(None, description="Address where the orchestrator reaches the node.")
    port: int | None = None
    admin_token: str = Field(repr=False)
    launch: dict[str, Any] = Field(
        default_factory=dict, description="Settings that need a replacement to change."
    )
    launch_hash: str = Field(description="Hash of ``launch``.")
    runtime_hash: str | None = Field(
        None, description="Hash of the RuntimeConfig last pushed; None until the first push."
    )
    generation: int = 0
    detected: list[str] = Field(
        default_factory=list,
        description="Capabilities the running daemon detected where it runs (gpu, python:X.Y…).",
    )
    wiring: dict[str, Any] = Field(
        default_factory=dict,
        description="Peers, inbound principals, routes and plugins last pushed (for plan reasons).",
    )
    join_credential: str | None = Field(
        None,
        repr=False,
        description="A joined node's one-time join secret (sealed like the tokens): what "
        "`codebolt state credentials NODE` hands its developer (wire/joining.py).",
    )
    pinned_ca: str | None = Field(
        None,
        description="When its server speaks TLS (a node on another host): the topology's CA "
        "certificate (PEM) its certificate must chain to; whoever connects pins it and the "
        "node's name. None: plain WebSocket (engine/certificates.py says which nodes).",
    )

    @property
    def scheme(self) -> str:
        """``wss`` when the node's server speaks TLS, else ``ws``."""
        return "ws" if self.pinned_ca is None else "wss"

    @property
    def url(self) -> str | None:
        if self.host is None or self.port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def move_to(self, target: Lifecycle, reason: str | None = None) -> None:
        """Record a lifecycle transition and why it happened; illegal moves are a programming
        error."""
        if not can_transition(self.lifecycle, target):
            raise ValueError(f"node {self.name!r}: illegal transition {self.lifecycle} -> {target}")
        self.lifecycle = target
        if reason is not None and len(reason) > REASON_LIMIT:
            reason = reason[: REASON_LIMIT - 1] + "…"
        self.history.append(Transition(state=target, reason=reason))
        del self.history[:-HISTORY_LIMIT]


class TopologyCa(_Model):
    """The CA that issues every node of the topology its certificate (PEM)."""

    cert: str = Field(description="The CA certificate: public, what every end pins.")
    key: str = Field(repr=False, description="Its private key, sealed with the state key.")


class State(_Model):
    """Everything apply knows about one topology instance."""

    version: int = STATE_VERSION
    lineage: str = Field(default_factory=lambda: uuid.uuid4().hex)
    serial: int = 0
    topology: str
    nodes: dict[str, NodeState] = Field(default_factory=dict)
    edge_tokens: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="'source->target' -> the token source presents to target.",
    )
    ca: TopologyCa | None = Field(
        None,
        repr=False,
        description="The topology's certificate authority: made by the first apply, removed "
        "by destroy (engine/certificates.py). Its key is sealed like the tokens.",
    )
