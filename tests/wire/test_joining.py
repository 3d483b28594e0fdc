"""A joined node's one-time secret: what comes out of it, and the sealed offer's round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codebolt_topo.errors import ConfigError
from codebolt_topo.wire.config import token_digest
from codebolt_topo.wire.joining import (
    join_proof,
    new_join_secret,
    open_offer,
    proof_digest,
    seal_offer,
)

pytestmark = pytest.mark.core


@given(st.text(max_size=20_000))
def test_a_sealed_offer_opens_with_its_secret_only(text: str) -> None:
    secret, other = new_join_secret(), new_join_secret()
    sealed = seal_offer(secret, text)
    assert open_offer(secret, sealed) == text
    with pytest.raises(ConfigError, match="does not open with this join secret"):
        open_offer(other, sealed)


def test_a_changed_byte_of_the_offer_is_refused() -> None:
    secret = new_join_secret()
    sealed = seal_offer(secret, '{"node": "dev-bob"}')
    middle = len(sealed) // 2
    changed = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1 :]
    with pytest.raises(ConfigError):
        open_offer(secret, changed)


def test_the_join_point_keeps_a_digest_it_cannot_turn_into_the_key() -> None:
    secret = new_join_secret()
    proof = join_proof(secret)
    assert proof == join_proof(secret)  # what the joining machine presents, every time
    assert proof_digest(secret) == token_digest(proof)
    assert secret not in proof
    assert proof != proof_digest(secret)
    # The key is another derivation: knowing the proof does not open the offer.
    with pytest.raises(ConfigError):
        open_offer(proof, seal_offer(secret, "{}"))
