"""The certificates a topology issues: one CA per topology, one certificate per node.

Every link that leaves a host runs over TLS, and each end *pins*: it trusts only its topology's
CA (never the system's store) and checks that the far end's certificate names the node it
expects (``wire/tls.py``). A certificate names its node as a DNS name in subjectAltName, the
only field TLS libraries check, and serves as server and as client certificate (the dialing
receiver presents it too). Keys are ECDSA P-256: a handshake costs ~1 ms, where RSA-3072 signs
~20x slower.

This module imports ``cryptography`` (only where certificates are made: apply and the tests);
a node daemon needs only :mod:`ssl`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from codebolt_topo.wire.config import TlsIdentity

__all__ = ["CertificateAuthority", "issue_ca"]

_CA_LIFETIME = datetime.timedelta(days=3650)
_NODE_LIFETIME = datetime.timedelta(days=825)
_BACKDATE = datetime.timedelta(minutes=5)
"""Certificates start slightly in the past: hosts' wall clocks differ by seconds to minutes."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A topology's CA, as PEM (the key is a secret: kept 0600 beside the state)."""

    cert: str
    key: str

    def issue(self, node: str) -> TlsIdentity:
        """A fresh key and certificate for ``node``, with this CA to pin."""
        ca_cert = x509.load_pem_x509_certificate(self.cert.encode())
        ca_key = serialization.load_pem_private_key(self.key.encode(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _NODE_LIFETIME)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(node)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return TlsIdentity(ca=self.cert, cert=_pem(cert), key=_key_pem(key))


def issue_ca(topology: str) -> CertificateAuthority:
    """A new CA for ``topology`` (its name goes in the subject, for people reading it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"codebolt {topology} CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert=_pem(cert), key=_key_pem(key))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
