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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codebolt_topo.model.limits import Limits

__all__ = [
    "DialOut",
    "DialSide",
    "JoinOffer",
    "LaunchConfig",
    "Limits",
    "PeerLink",
    "RuntimeConfig",
    "TlsIdentity",
    "token_digest",
]

DialSide = Literal["sender", "receiver"]
"""Which end of an edge opens its connection (the sender always sends the work)."""


def token_digest(token: str) -> str:
    """Digest under which a node remembers a token it accepts (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerLink(_Model):
    """How this node reaches one of its outgoing peers (it sends work to them).

    With ``dial: receiver`` the peer opens the connection (this node may not be able to reach
    it: NAT, a sandbox): the link is the connection the peer dialed in with, authenticated by
    ``dialer_digest``; this node then proves itself with ``token`` (node/dialin.py).
    """

    url: str | None = Field(
        None, description="ws:// or wss://host:port of the peer's ProviderServer (dial: sender)."
    )
    token: str = Field(
        description="Bearer token this node presents to that peer (dial: sender), or proves it "
        "holds when the peer dials in (dial: receiver).",
        repr=False,
    )
    dial: DialSide = Field("sender", description="Which end opens the connection.")
    dialer_digest: str = Field(
        "",
        description="dial: receiver: digest of the dial token the peer presents when it dials in.",
    )
    pinned: bool = Field(
        True,
        description="A wss:// far end holds a certificate of this topology: pin its CA and name. "
        "False: it is reached through a proxy with a public certificate (e2b's), checked "
        "against the system's CAs.",
    )
    keep: bool = Field(
        False,
        description="dial: sender: open the link at once and keep it open, not on the first "
        "request (a joined node: its links are how its neighbours know it is there).",
    )


class DialOut(_Model):
    """An edge into this node whose connection this node opens (``dial: receiver``): it dials
    the sender, then serves the sender's requests on that connection as if the sender had
    connected (node/dialer.py)."""

    url: str = Field(description="ws:// or wss://host:port of the sender, as reachable from here.")
    token: str = Field(description="The dial token this node presents to the sender.", repr=False)
    pinned: bool = Field(
        True,
        description="A wss:// far end holds a certificate of this topology: pin its CA and name. "
        "False: it is reached through a proxy with a public certificate (e2b's), checked "
        "against the system's CAs.",
    )


class JoinOffer(_Model):
    """What a join point holds for a node that joins from its own machine (wire/joining.py):
    the node's launch config sealed with its one-time join secret, and how to check the proof
    the joining machine presents. The join point can neither read the config nor forge a
    proof; it hands the sealed config over once."""

    proof_digest: str = Field(description="Digest of the proof derived from the join secret.")
    sealed: str = Field(repr=False, description="The node's LaunchConfig (JSON), sealed.")
    revoked: list[str] = Field(
        default_factory=list,
        description="Proof digests of join secrets issued before this one (renewed): refused "
        "with that reason rather than as unknown.",
    )


class TlsIdentity(_Model):
    """This node's certificate and key, and the topology's CA it pins (all PEM): its server
    speaks TLS, and every link it opens or accepts is checked against the CA and the node name
    the certificate must carry (wire/tls.py)."""

    ca: str = Field(description="The topology's CA certificate (PEM): the only one trusted.")
    cert: str = Field(description="This node's certificate (PEM), issued by that CA.")
    key: str = Field(description="This node's private key (PEM).", repr=False)
    serve: bool = Field(
        True,
        description="Whether this node's server speaks TLS (it runs on another host than some "
        "of its callers); False: it serves plain WebSocket on this host and presents the "
        "certificate only on the links it opens to nodes that serve TLS.",
    )


class RuntimeConfig(_Model):
    """The part of a node's configuration that may change while it runs."""

    generation: int = Field(0, description="Increases with every push; stale pushes are ignored.")
    peers: dict[str, PeerLink] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Destination node -> next hops to try, nearest first (computed by the planner)."
        ),
    )
    accept: dict[str, str] = Field(
        default_factory=dict,
        description="Principal (the source node of an inbound edge) -> digest of its token.",
    )
    dial: dict[str, DialOut] = Field(
        default_factory=dict,
        description="Sender of an inbound edge -> how this node dials it (dial: receiver).",
    )
    joins: dict[str, JoinOffer] = Field(
        default_factory=dict,
        description="Joined node -> its offer, on the neighbour it joins through (its join point).",
    )
    upstream: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Node -> the nodes upstream of it, for this node and every node upstream "
            "of it: who may carry and reach whose requests (see node/security/principals.py)."
        ),
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Enabled plugins and their settings; remote-execution on nodes with inbound edges."
        ),
    )
    capabilities: list[str] = Field(default_factory=list)
    hop_limit: int = Field(
        16, ge=1, description="Hops a request may still take when it enters here."
    )
    window: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description=(
            "Bytes of one job's stream this node sends beyond what its caller "
            "acknowledged; a full window pauses the child (bounded memory)."
        ),
    )
    retention: float = Field(
        60.0,
        ge=0,
        description="Seconds a finished job (its unacknowledged tail and exit) is "
        "kept for callers that resume or repeat the request.",
    )
    detach_lease: float = Field(
        300.0,
        ge=0,
        description="Seconds a running job with no caller attached keeps running "
        "before it is killed.",
    )
    keepalive_interval: float | None = Field(
        20.0,
        gt=0,
        description="Seconds between WebSocket pings on links and inbound "
        "connections (None: no pings).",
    )
    keepalive_timeout: float = Field(
        20.0,
        gt=0,
        description="Seconds without a pong before a connection counts as dead.",
    )
    request_ttl: float = Field(
        60.0,
        gt=0,
        description="Seconds an exec frame stays valid after it was issued; the executing "
        "node remembers the ids it ran that long, so a frame resent later never runs twice.",
    )
    limits: Limits = Field(default_factory=Limits)


class FenceSettings(_Model):
    """Paths of a :class:`~codebolt_topo.node.security.isolation.Fence` (absolute)."""

    hidden: str = Field(description="A directory jobs must not reach (its tokens).")
    kept: list[str] = Field(
        default_factory=list, description="Directories below ``hidden`` that stay reachable."
    )
    blanked: list[str] = Field(
        default_factory=list, description="Files below ``kept`` that read as empty."
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
    tls: TlsIdentity | None = Field(
        None,
        description="Serve and open links over TLS with this identity (links that leave a "
        "host); None: plain WebSocket (loopback).",
    )
    fence: FenceSettings | None = Field(
        None,
        description="What the daemon walls off from itself and its jobs before serving "
        "(local nodes: the topology's state directory; see node/security/isolation.py).",
    )
