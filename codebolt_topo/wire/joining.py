"""A joined node's one-time credential, and the offer its join point holds (pure: no sockets).

A node declared ``provider: joined`` runs on a developer's own machine, which nothing can dial.
``apply`` gives it a one-time *join secret* ``S`` (``codebolt state credentials NODE`` writes
it, with the topology's CA and where to join, 0600), and gives one of its neighbours, the *join
point*, an offer (:class:`~codebolt_topo.wire.config.JoinOffer`): the node's whole launch
config (its certificate and key, its edge tokens, the URLs it dials) encrypted with a key
derived from ``S``, and the digest of a proof derived from ``S``. The joining machine presents
the proof over TLS pinned to the topology's CA; the join point checks it, marks the offer used
(one time) and hands over the sealed config, which only a holder of ``S`` opens.

Two values come out of ``S`` by HMAC, each for one use, so the join point, which sees the
proof, never holds the key: it could not read the config it keeps, nor forge another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field

from codebolt_topo.errors import ConfigError
from codebolt_topo.wire.config import token_digest

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = [
    "JOIN_HOST",
    "JOIN_NODE_HEADER",
    "JOIN_PATH",
    "JOIN_PROOF_HEADER",
    "JoinCredentials",
    "join_proof",
    "new_join_secret",
    "open_offer",
    "proof_digest",
    "seal_offer",
]

JOIN_PATH: Final = "/join"
"""The HTTPS path a join point answers a joining node on (no WebSocket: one request, one
answer)."""
JOIN_NODE_HEADER: Final = "Codebolt-Join"
"""Request header naming the node that joins."""
JOIN_PROOF_HEADER: Final = "Codebolt-Join-Proof"
"""Request header carrying the proof derived from the join secret."""
JOIN_HOST: Final = "join-point.invalid"
"""Stands, in a joined node's URLs, for the host it was told to join at: a neighbour bound to
every interface (``0.0.0.0``) has no one address the orchestrator could tell (``.invalid``:
RFC 6761, never resolvable, so a URL not rewritten fails loudly)."""


def new_join_secret() -> str:
    """A fresh one-time join secret (256 random bits)."""
    return secrets.token_urlsafe(32)


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"codebolt join " + purpose, hashlib.sha256).digest()


def join_proof(secret: str) -> str:
    """What the joining machine presents to the join point (hex)."""
    return _derive(secret, b"proof").hex()


def proof_digest(secret: str) -> str:
    """What the join point keeps to check a proof: the digest of :func:`join_proof`."""
    return token_digest(join_proof(secret))


def _fernet(secret: str) -> Fernet:
    from cryptography.fernet import Fernet  # only where a join happens: daemons start without it

    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"key")))


def seal_offer(secret: str, launch_json: str) -> str:
    """A joined node's launch config, readable only with ``secret``."""
    return _fernet(secret).encrypt(launch_json.encode()).decode()


def open_offer(secret: str, sealed: str) -> str:
    """The launch config sealed by :func:`seal_offer` (authenticated: a changed byte fails)."""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(secret).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        raise ConfigError(
            "the join point's offer does not open with this join secret: the credentials "
            "file is not the one issued for this offer"
        ) from None


class JoinCredentials(BaseModel):
    """What ``codebolt state credentials NODE`` writes (0600) and ``codebolt join`` reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topology: str = Field(description="The topology the node belongs to.")
    node: str = Field(description="The joined node's name.")
    join_point: str = Field(description="The neighbour that holds the node's offer.")
    url: str = Field(
        description="The join point's URL as the orchestrator knows it (join URL overrides it)."
    )
    ca: str = Field(description="The topology's CA certificate (PEM): the join point's pin.")
    secret: str = Field(repr=False, description="The one-time join secret.")
