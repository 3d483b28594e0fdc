"""TLS contexts for links that leave a host, built from a node's :class:`TlsIdentity`.

Pinning: a context trusts the topology's CA alone (the system's store is never loaded), and
the name checked is a *node name*: a link to ``b`` is opened with ``server_hostname="b"``, so
the handshake fails unless the far end holds a certificate the topology issued to ``b``. The
server asks every client for a certificate (a node presents its own; the orchestrator's admin
client may come without one and is known by its token); ``node/security/auth.py`` then requires
a peer's or a dialer's certificate to name the principal its token claims. TLS 1.3 only.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from codebolt_topo.wire.config import TlsIdentity

__all__ = ["client_context", "is_tls_url", "names_in", "pinned_client", "server_context"]


def server_context(identity: TlsIdentity) -> ssl.SSLContext:
    """The context of a node's server: its certificate; client certificates verified against
    the topology's CA when presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    _load_identity(context, identity)
    context.load_verify_locations(cadata=identity.ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(ca: str, identity: TlsIdentity | None = None) -> ssl.SSLContext:
    """The context of a connection to a node: the topology's CA pinned, the node's name checked
    (pass ``server_hostname``), and this node's certificate presented when ``identity``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if identity is not None:
        _load_identity(context, identity)
    return context


def pinned_client(ca: str | None, url: str) -> ssl.SSLContext | None:
    """The context an admin client (no certificate of its own) opens ``url`` with: the CA
    pinned for ``wss://``, None for ``ws://`` or without a CA (a node that serves no TLS).
    Built once per CA (loading it costs ~1 ms)."""
    return _admin_context(ca) if ca is not None and is_tls_url(url) else None


@lru_cache(maxsize=16)
def _admin_context(ca: str) -> ssl.SSLContext:
    return client_context(ca)


def is_tls_url(url: str) -> bool:
    """Whether ``url`` asks for TLS (``wss://``)."""
    return url.startswith("wss://")


def names_in(peercert: dict[str, Any] | None) -> set[str]:
    """The node names a verified peer certificate carries (its DNS subjectAltNames)."""
    if not peercert:
        return set()
    return {value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"}


def _load_identity(context: ssl.SSLContext, identity: TlsIdentity) -> None:
    """Load a PEM certificate and key: :mod:`ssl` reads them only from files, so they pass
    through a private directory that is gone when this returns."""
    with tempfile.TemporaryDirectory(prefix="codebolt-tls-") as tmp:
        path = Path(tmp) / "identity.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(identity.key + identity.cert)
        context.load_cert_chain(path)
