"""Both ends of a receiver-dialed connection prove who they are (pure: no sockets).

On an edge ``a -> b`` with ``dial: receiver``, ``b`` opens the connection to ``a``. ``b`` proves
itself with the edge's *dial token* (``a`` keeps its digest, ``PeerLink.dialer_digest``), and by
its TLS certificate where the link leaves a host. ``a`` proves itself by answering ``b``'s nonce
with an HMAC keyed by the digest of the edge's *work token* (the one ``a`` presents when it
dials, whose digest ``b`` already keeps in ``accept``): ``b`` learns that the far end holds
``a``'s token for this very edge, without that token crossing the wire. A dial token is never a
work token: each is checked only where it belongs, so one presented from the wrong side, or
for another edge, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from codebolt_topo.wire.config import token_digest

__all__ = ["check_proof", "new_nonce", "proof", "proof_from_token"]


def new_nonce() -> str:
    """A fresh challenge for one dial (128 random bits, hex)."""
    return os.urandom(16).hex()


def proof(work_digest: str, sender: str, receiver: str, nonce: str) -> str:
    """The sender's answer to ``nonce``: HMAC-SHA256 keyed by the work token's digest over the
    edge and the nonce, so an answer for another edge or another dial proves nothing."""
    message = f"{sender}->{receiver} {nonce}".encode()
    return hmac.new(bytes.fromhex(work_digest), message, hashlib.sha256).hexdigest()


def proof_from_token(token: str, sender: str, receiver: str, nonce: str) -> str:
    """:func:`proof` computed by the sender, which holds the work token itself."""
    return proof(token_digest(token), sender, receiver, nonce)


def check_proof(
    answer: str | None, work_digest: str, sender: str, receiver: str, nonce: str
) -> bool:
    """Whether ``answer`` is the sender's proof for this edge and nonce (constant time)."""
    if answer is None or not work_digest:
        return False
    expected = proof(work_digest, sender, receiver, nonce)
    return hmac.compare_digest(answer.encode(), expected.encode())
