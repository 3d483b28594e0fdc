"""Which end of each edge opens its connection, decided where both ends are known.

An edge's ``dial`` (``sender``, ``receiver`` or ``auto``) is resolved from what the providers
say about where their nodes stand: the sender's provider tells the URL at which the sender
reaches the receiver (``Provider.peer_url``), the receiver's provider the URL at which the
receiver reaches the sender. ``auto`` takes the sender's way when there is one (what every
edge did before ``dial`` existed), else the receiver's: a sandbox or a host that cannot reach
its peer is reached by the peer dialing it instead. Both ends are configured from the same
resolution, so they always agree: the sender gets a :class:`PeerLink` that waits for the
dial-in, the receiver a :class:`DialOut` to the sender.

The receiver's dial token is derived from the edge's work token (an HMAC of it): nothing new to
store, rotated with the work token, and the receiver, who knows only the work token's digest,
cannot turn it back into the work token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from codebolt_topo.model.state import NodeState
from codebolt_topo.model.topology import DialMode
from codebolt_topo.wire.config import DialOut, DialSide, PeerLink, token_digest

__all__ = ["EdgeEnds", "dial_token", "resolve_edge"]

UrlFrom = Callable[[NodeState, NodeState], str | None]
"""(from node, to node) -> the URL at which ``from`` reaches ``to``, None when it cannot."""


@dataclass(frozen=True, slots=True)
class EdgeEnds:
    """How one edge between two running nodes is wired."""

    side: DialSide | None
    """The end that dials; None: the edge's ``dial`` asks for an end that cannot reach the other."""
    sender_url: str | None
    receiver_url: str | None
    receiver_pinned: bool = True
    """Whether the receiver serves TLS with the topology's certificate (else a ``wss://`` URL
    to it is a proxy's, e2b's, with a public certificate)."""
    sender_pinned: bool = True

    def peer_link(self, work_token: str) -> PeerLink | None:
        """The sender's side (None when the edge cannot be wired)."""
        if self.side == "sender" and self.sender_url is not None:
            return PeerLink(url=self.sender_url, token=work_token, pinned=self.receiver_pinned)
        if self.side == "receiver":
            return PeerLink(
                token=work_token,
                dial="receiver",
                dialer_digest=token_digest(dial_token(work_token)),
            )
        return None

    def dial_out(self, work_token: str) -> DialOut | None:
        """The receiver's side: what it dials, when it is the end that dials."""
        if self.side == "receiver" and self.receiver_url is not None:
            return DialOut(
                url=self.receiver_url, token=dial_token(work_token), pinned=self.sender_pinned
            )
        return None


def resolve_edge(
    mode: DialMode, sender: NodeState, receiver: NodeState, url_from: UrlFrom
) -> EdgeEnds:
    """Resolve ``mode`` for the edge ``sender -> receiver``, both running."""
    forward = url_from(sender, receiver)
    backward = url_from(receiver, sender)
    side: DialSide | None
    if mode == "sender":
        side = "sender" if forward else None
    elif mode == "receiver":
        side = "receiver" if backward else None
    else:
        side = "sender" if forward else "receiver" if backward else None
    return EdgeEnds(
        side,
        forward,
        backward,
        receiver_pinned=receiver.pinned_ca is not None,
        sender_pinned=sender.pinned_ca is not None,
    )


def dial_token(work_token: str) -> str:
    """The token a receiver dials its sender with, derived from the edge's work token."""
    return hmac.new(work_token.encode(), b"codebolt dial token", hashlib.sha256).hexdigest()
