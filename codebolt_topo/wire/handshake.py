"""What both ends agree on before the first frame: the subprotocol, the request clock, and, on a
connection the receiver of an edge opens, who dials whom and the sender's proof."""

from __future__ import annotations

from typing import Final

__all__ = ["CLOCK_HEADER", "DIAL_HEADER", "NONCE_HEADER", "PROOF_HEADER", "SUBPROTOCOL"]

SUBPROTOCOL: Final = "codebolt.v3"
"""v3: every ``exec`` carries ``issued`` (the replay guard), which a v2 peer neither sends nor
re-stamps, so its requests would be refused one by one; the versions refuse each other at the
handshake instead. (v2 folded ``done`` into the message that ends a request's last target.)
A connection dialed by an edge's receiver carries the same frames in the same directions as
one the sender opens, so it needs no new version: a node that does not know dialing refuses
the dial token (401) like any unknown token. ``sync`` and its answer ``synced`` (a node
syncing narrative history along its edge) are new messages, not a new version: a node that
predates them answers ``sync`` ``bad-request`` (unknown message type), which the engine takes
as "relay this transfer through the orchestrator instead"."""
CLOCK_HEADER: Final = "Codebolt-Clock"
"""Header telling a node's request clock, ``<epoch> <seconds>``: in a node's handshake response,
and in the request of a receiver dialing its sender (the side that executes tells it)."""
DIAL_HEADER: Final = "Codebolt-Dial"
"""Request header of a receiver dialing its sender: the receiver's node name. Its bearer token
is then checked against the dial tokens of the sender's receiver-dialed edges only."""
NONCE_HEADER: Final = "Codebolt-Nonce"
"""Request header of a dialing receiver: 32 random hex characters the sender must sign."""
PROOF_HEADER: Final = "Codebolt-Proof"
"""Response header of a sender accepting a dial: its proof of holding the edge's work token
(wire/dialing.py)."""
