"""Who is knocking: bearer-token authentication on the WebSocket handshake.

The check runs in the websockets ``process_request`` hook, before the upgrade, so an
unauthenticated client never reaches the protocol. Tokens are compared as SHA-256 digests with
:func:`hmac.compare_digest` against *every* accepted digest (no early exit), so timing reveals
neither which principal matched nor how much of a digest did. Tokens are never logged.
"""

from __future__ import annotations

import hmac
import weakref
from collections.abc import Callable, Mapping
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from codebolt_topo.node.config import token_digest

__all__ = ["ADMIN", "Authenticator", "authenticate"]

ADMIN = "admin"
"""Principal of the orchestrator and local clients (whoever holds the admin token)."""


def authenticate(authorization: str | None, admin_digest: str,
                 accept: Mapping[str, str]) -> str | None:
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


class Authenticator:
    """A ``process_request`` hook: 403 for browser origins, 401 for bad tokens, else pass.

    The principal of each accepted connection is kept until :meth:`principal_of` takes it.
    ``accept`` is a callable so that a ``configure`` push changes the accepted peers at once.
    """

    def __init__(self, admin_digest: str, accept: Callable[[], Mapping[str, str]]) -> None:
        self._admin_digest = admin_digest
        self._accept = accept
        self._principals: weakref.WeakKeyDictionary[ServerConnection, str] = (
            weakref.WeakKeyDictionary())

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if "Origin" in request.headers:
            return connection.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        principal = authenticate(request.headers.get("Authorization"), self._admin_digest,
                                 self._accept())
        if principal is None:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Missing or unknown token\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="codebolt"'
            return response
        self._principals[connection] = principal
        return None

    def principal_of(self, connection: ServerConnection) -> str | None:
        """Take (and forget) the principal recorded for ``connection`` during its handshake."""
        return self._principals.pop(connection, None)
