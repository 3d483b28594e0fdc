"""The pure parts of a receiver-dialed link: the sender's proof, and the certificates a
topology issues (issue 14, item 1)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from codebolt_topo.wire.config import token_digest
from codebolt_topo.wire.dialing import check_proof, new_nonce, proof_from_token
from codebolt_topo.wire.pki import issue_ca
from codebolt_topo.wire.tls import names_in


def test_the_proof_holds_for_its_edge_and_nonce_only() -> None:
    nonce = new_nonce()
    digest = token_digest("work")
    answer = proof_from_token("work", "a", "b", nonce)
    assert check_proof(answer, digest, "a", "b", nonce)
    assert not check_proof(answer, digest, "a", "c", nonce)  # another edge
    assert not check_proof(answer, digest, "x", "b", nonce)  # another sender
    assert not check_proof(answer, digest, "a", "b", new_nonce())  # a replayed answer
    assert not check_proof(answer, token_digest("other"), "a", "b", nonce)
    assert not check_proof(None, digest, "a", "b", nonce)
    assert not check_proof(answer, "", "a", "b", nonce)  # no edge from a: nothing proves it


def test_nonces_are_fresh_hex() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)


@pytest.mark.parametrize("node", ["hub", "dev_bob", "worker-3"])
def test_a_node_certificate_names_its_node_and_is_issued_by_the_topologys_ca(node: str) -> None:
    ca = issue_ca("t")
    identity = ca.issue(node)
    cert = x509.load_pem_x509_certificate(identity.cert.encode())
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    cert.verify_directly_issued_by(ca_cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [node]
    assert identity.ca == ca.cert
    with pytest.raises(InvalidSignature):  # another CA of the same name
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(issue_ca("t").cert.encode()))


def test_names_in_reads_dns_names_of_a_verified_certificate() -> None:
    assert names_in({"subjectAltName": (("DNS", "b"), ("IP Address", "10.0.0.1"))}) == {"b"}
    assert names_in(None) == set()
    assert names_in({}) == set()
