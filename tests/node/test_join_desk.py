"""The join point's desk decides each join (node/joins.py): once, and with a reason on refusal.

The decisions are pure given the offers and the state directory; the HTTPS adapter is covered
end to end by tests/e2e/test_joined_nodes.py.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest

from codebolt_topo.node.joins import JoinDesk
from codebolt_topo.wire.config import JoinOffer
from codebolt_topo.wire.joining import join_proof, new_join_secret, proof_digest

pytestmark = pytest.mark.core


def _offer(secret: str, *revoked: str) -> JoinOffer:
    return JoinOffer(
        proof_digest=proof_digest(secret),
        sealed="sealed-config",
        revoked=[proof_digest(old) for old in revoked],
    )


def test_an_offer_is_handed_over_once_even_across_a_restart(tmp_path: Path) -> None:
    secret = new_join_secret()
    offers = {"dev-bob": _offer(secret)}
    desk = JoinDesk("hub", lambda: offers, tmp_path)
    first = desk.answer("dev-bob", join_proof(secret), "10.0.0.9:5000")
    assert (first.status, first.body) == (HTTPStatus.OK, "sealed-config")
    assert (tmp_path / "joins-used.json").stat().st_mode & 0o777 == 0o600
    again = JoinDesk("hub", lambda: offers, tmp_path)  # the daemon restarted
    second = again.answer("dev-bob", join_proof(secret), "10.0.0.7:6000")
    assert second.status is HTTPStatus.CONFLICT
    assert "already used" in second.body
    assert "10.0.0.9:5000" in second.body
    assert "--renew" in second.body


def test_a_renewed_secret_refuses_the_old_one_as_revoked(tmp_path: Path) -> None:
    old, new = new_join_secret(), new_join_secret()
    desk = JoinDesk("hub", lambda: {"dev-bob": _offer(new, old)}, tmp_path)
    refused = desk.answer("dev-bob", join_proof(old), "x")
    assert refused.status is HTTPStatus.FORBIDDEN
    assert "revoked" in refused.body
    assert desk.answer("dev-bob", join_proof(new), "x").status is HTTPStatus.OK


def test_unknown_proofs_nodes_and_bare_requests_are_refused(tmp_path: Path) -> None:
    secret = new_join_secret()
    desk = JoinDesk("hub", lambda: {"dev-bob": _offer(secret)}, tmp_path)
    wrong = desk.answer("dev-bob", join_proof(new_join_secret()), "x")
    assert wrong.status is HTTPStatus.FORBIDDEN
    assert "not a valid join credential" in wrong.body
    elsewhere = desk.answer("dev-alice", join_proof(secret), "x")
    assert elsewhere.status is HTTPStatus.NOT_FOUND
    assert "holds no join offer" in elsewhere.body
    assert desk.answer(None, None, "x").status is HTTPStatus.BAD_REQUEST
    # None of these used the offer up.
    assert desk.answer("dev-bob", join_proof(secret), "x").status is HTTPStatus.OK
