"""The state file's schema: what apply created, where it lives, and how to reach it.

The state is the orchestrator's memory between runs. It holds tokens, so it is written 0600
(see :mod:`codebolt_topo.engine.statefile`). ``serial`` increases on every write that changes
something; ``lineage`` is fixed when the state is first created, so a state file from another
topology instance is never mistaken for this one.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["STATE_VERSION", "Lifecycle", "NodeState", "State", "Transition"]

STATE_VERSION = 1


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
    state: Lifecycle
    at: float = Field(default_factory=time.time)


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

    @property
    def url(self) -> str | None:
        if self.host is None or self.port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def move_to(self, target: Lifecycle) -> None:
        """Record a lifecycle transition; illegal moves are a programming error."""
        if not can_transition(self.lifecycle, target):
            raise ValueError(f"node {self.name!r}: illegal transition {self.lifecycle} -> {target}")
        self.lifecycle = target
        self.history.append(Transition(state=target))
        del self.history[:-20]


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
