"""Who is knocking: bearer-token authentication on the WebSocket handshake.

The check runs in the websockets ``process_request`` hook, before the upgrade, so an
unauthenticated client never reaches the protocol. Tokens are compared as SHA-256 digests with
:func:`hmac.compare_digest` against *every* accepted digest (no early exit), so timing reveals
neither which principal matched nor how much of a digest did. Tokens are never logged.

A receiver dialing its sender (``Codebolt-Dial: <its name>``, an edge with ``dial: receiver``)
is checked against the *dial* tokens of this node's receiver-dialed edges only, and a
connection without that header against the admin and work tokens only: a token presented
from the wrong side of an edge, or for another edge, matches nothing and gets 401. Where the
server speaks TLS, a peer's or a dialer's client certificate must name the principal its token
proves (403 otherwise): the token says which edge, the certificate which node.
"""

from __future__ import annotations

import hmac
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from codebolt_topo.wire.config import token_digest
from codebolt_topo.wire.handshake import DIAL_HEADER, NONCE_HEADER
from codebolt_topo.wire.tls import names_in

__all__ = ["ADMIN", "Authenticator", "Knock", "authenticate"]

_NONCE = re.compile(r"[0-9a-f]{32}")

ADMIN = "admin"
"""Principal of the orchestrator and local clients (whoever holds the admin token)."""


def authenticate(
    authorization: str | None, admin_digest: str, accept: Mapping[str, str]
) -> str | None:
    """The principal a bearer ``Authorization`` header value proves, or None.

    ``accept`` maps peer principals (source nodes of inbound edges) to token digests.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    presented = token_digest(token.strip()).encode()
    found: str | None = None
    for principal, digest in ((ADMIN, admin_digest), *accept.items()):
        # Every digest is compared, matched or not: the loop's duration is independent of which.
        if hmac.compare_digest(presented, digest.encode()) and found is None:
            found = principal
    return found


@dataclass(frozen=True)
class Knock:
    """Who an accepted handshake proved to be: a principal, and whether it is the receiver of
    one of this node's edges dialing in (its connection then carries this node's work to it)."""

    principal: str
    dialed: bool = False


class Authenticator:
    """A ``process_request`` hook: 403 for browser origins, 401 for bad tokens, else pass.

    The :class:`Knock` of each accepted connection is kept until :meth:`knock_of` takes it.
    ``accept`` and ``dialers`` (receiver -> digest of its dial token) are callables so that a
    ``configure`` push changes them at once. ``tls``: client certificates are checked.
    """

    def __init__(
        self,
        admin_digest: str,
        accept: Callable[[], Mapping[str, str]],
        dialers: Callable[[], Mapping[str, str]] = dict,
        tls: bool = False,
    ) -> None:
        self._admin_digest = admin_digest
        self._accept = accept
        self._dialers = dialers
        self._tls = tls
        self._knocks: weakref.WeakKeyDictionary[ServerConnection, Knock] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if "Origin" in request.headers:
            return connection.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        knock = self._knock(request)
        if knock is None:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Missing or unknown token\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="codebolt"'
            return response
        if self._tls and knock.principal != ADMIN:
            certificate = connection.transport.get_extra_info("peercert")
            if knock.principal not in names_in(certificate):
                return connection.respond(
                    HTTPStatus.FORBIDDEN, "Client certificate does not name this peer\n"
                )
        self._knocks[connection] = knock
        return None

    def _knock(self, request: Request) -> Knock | None:
        authorization = request.headers.get("Authorization")
        dialer = request.headers.get(DIAL_HEADER)
        if dialer is None:
            principal = authenticate(authorization, self._admin_digest, self._accept())
            return None if principal is None else Knock(principal)
        if not _NONCE.fullmatch(request.headers.get(NONCE_HEADER, "")):
            return None
        dialers = self._dialers()
        # No admin digest here: "" never matches, and every dial digest is still compared.
        found = authenticate(authorization, "", dialers)
        return Knock(dialer, dialed=True) if found == dialer else None

    def peek(self, connection: ServerConnection) -> Knock | None:
        """What ``connection``'s handshake proved, kept for :meth:`knock_of`."""
        return self._knocks.get(connection)

    def knock_of(self, connection: ServerConnection) -> Knock | None:
        """Take (and forget) what ``connection``'s handshake proved."""
        return self._knocks.pop(connection, None)
