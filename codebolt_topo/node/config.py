"""What a node daemon needs to know, as handed to it by the orchestrator.

Two parts with different lifetimes:

* :class:`LaunchConfig` is fixed for the life of the process (name, bind address, admin token,
  workspace). Changing any of it means replacing the node.
* :class:`RuntimeConfig` is pushed over the wire with a ``configure`` message and can change while
  the node runs (peers, routes, accepted peer tokens, plugins). This is how re-applying a topology
  rewires neighbours without restarting them.

Secrets: a node stores only SHA-256 digests of the tokens it *accepts*; it stores in clear text
only the tokens it must *present* to its own peers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LaunchConfig", "PeerLink", "RuntimeConfig", "token_digest"]


def token_digest(token: str) -> str:
    """Digest under which a node remembers a token it accepts (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerLink(_Model):
    """How this node reaches one of its outgoing peers."""

    url: str = Field(description="ws://host:port of the peer's ProviderServer.")
    token: str = Field(description="Bearer token this node presents to that peer.", repr=False)


class RuntimeConfig(_Model):
    """The part of a node's configuration that may change while it runs."""

    generation: int = Field(0, description="Increases with every push; stale pushes are ignored.")
    peers: dict[str, PeerLink] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description=("Destination node -> next hops to try, nearest first "
                     "(computed by the planner)."),
    )
    accept: dict[str, str] = Field(
        default_factory=dict,
        description="Principal (the source node of an inbound edge) -> digest of its token.",
    )
    upstream: dict[str, list[str]] = Field(
        default_factory=dict,
        description=("Node -> the nodes upstream of it, for this node and every node upstream "
                     "of it: who may carry and reach whose requests (see node/principals.py)."),
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=("Enabled plugins and their settings; remote-execution on nodes with "
                     "inbound edges."),
    )
    capabilities: list[str] = Field(default_factory=list)
    hop_limit: int = Field(
        16, ge=1, description="Hops a request may still take when it enters here."
    )
    window: int = Field(
        16 * 1024 * 1024, ge=1024,
        description=("Bytes of one job's stream this node sends beyond what its caller "
                     "acknowledged; a full window pauses the child (bounded memory)."),
    )
    retention: float = Field(
        60.0, ge=0, description="Seconds a finished job (its unacknowledged tail and exit) is "
        "kept for callers that resume or repeat the request.",
    )
    detach_lease: float = Field(
        300.0, ge=0, description="Seconds a running job with no caller attached keeps running "
        "before it is killed.",
    )
    keepalive_interval: float | None = Field(
        20.0, gt=0, description="Seconds between WebSocket pings on links and inbound "
        "connections (None: no pings).",
    )
    keepalive_timeout: float = Field(
        20.0, gt=0, description="Seconds without a pong before a connection counts as dead.",
    )


class LaunchConfig(_Model):
    """The part of a node's configuration fixed at process start."""

    topology: str
    node: str
    host: str = "127.0.0.1"
    port: int = Field(3100, ge=0, le=65535, description="0 asks the OS for a free port.")
    admin_token_digest: str = Field(
        description="Digest of the orchestrator's token: may configure the node and run work.",
    )
    workspace: str
    state_dir: str
    env: dict[str, str] = Field(default_factory=dict)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
