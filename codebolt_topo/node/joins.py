"""The join point's desk: hands a joining node its sealed launch config, once.

A node declared ``provider: joined`` joins from a machine nothing can dial. One of its
neighbours, the join point, holds its offer (``RuntimeConfig.joins``: the launch config
sealed with the node's one-time join secret, and the digest of the proof derived from it;
``wire/joining.py``). The joining machine asks with ``GET /join`` over this node's TLS
server, naming the node and presenting the proof; the desk answers with the sealed config
and records the offer as used, in the node's state directory, so neither a replay nor a second
machine holding a copy of the credentials file gets it again, even after this daemon
restarts. Every refusal says why in words a developer can act on.

Pure decisions (:meth:`JoinDesk.answer`) are separate from the websockets adapter
(:meth:`JoinDesk.respond`).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from codebolt_topo.credentials import write_secret
from codebolt_topo.wire.config import JoinOffer, token_digest
from codebolt_topo.wire.joining import JOIN_NODE_HEADER, JOIN_PROOF_HEADER

__all__ = ["JoinAnswer", "JoinDesk"]

log = logging.getLogger(__name__)
USED_FILE = "joins-used.json"


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    status: HTTPStatus
    body: str


class JoinDesk:
    """Answers ``GET /join`` for the offers in ``offers()`` (read live: a ``configure`` push
    adds, renews or withdraws them at once)."""

    def __init__(self, node: str, offers: Callable[[], Mapping[str, JoinOffer]], home: Path):
        self._node = node
        self._offers = offers
        self._path = home / USED_FILE
        self._used: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        return (
            {str(k): v for k, v in data.items() if isinstance(v, dict)}
            if isinstance(data, dict)
            else {}
        )

    def _save(self) -> None:
        write_secret(self._path, json.dumps(self._used))

    def used(self) -> dict[str, dict[str, Any]]:
        """Proof digest -> when and from where its offer was taken."""
        return dict(self._used)

    def answer(self, node: str | None, proof: str | None, remote: str) -> JoinAnswer:
        """The answer to a join of ``node`` presenting ``proof`` from ``remote``."""
        if not node or not proof:
            return JoinAnswer(
                HTTPStatus.BAD_REQUEST,
                f"a join names the node ({JOIN_NODE_HEADER}) and "
                f"presents its proof ({JOIN_PROOF_HEADER})\n",
            )
        offer = self._offers().get(node)
        if offer is None:
            return JoinAnswer(
                HTTPStatus.NOT_FOUND,
                f"node {self._node!r} holds no join offer for {node!r}: join at the node the "
                "credentials file names (its join point), or re-apply the topology\n",
            )
        digest = token_digest(proof)
        if any(hmac.compare_digest(digest, old) for old in offer.revoked):
            return JoinAnswer(
                HTTPStatus.FORBIDDEN,
                f"this join credential of {node!r} was revoked (a newer one was issued with "
                f"'codebolt state credentials {node} --renew'): ask for the current one\n",
            )
        if not hmac.compare_digest(digest, offer.proof_digest):
            return JoinAnswer(
                HTTPStatus.FORBIDDEN,
                f"not a valid join credential of {node!r} for this topology\n",
            )
        taken = self._used.get(digest)
        if taken is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(taken.get("at", 0)))
            return JoinAnswer(
                HTTPStatus.CONFLICT,
                f"this join credential of {node!r} was already used at {when} from "
                f"{taken.get('from', '?')}: a join credential works once; the machine that "
                "joined rejoins with the credentials it stored ('codebolt join' in its "
                f"directory), and 'codebolt state credentials {node} --renew' issues a new "
                "one (the old machine is then cut off)\n",
            )
        self._used[digest] = {"node": node, "at": time.time(), "from": remote}
        self._save()
        log.info("node %s joined through this node from %s", node, remote)
        return JoinAnswer(HTTPStatus.OK, offer.sealed)

    def respond(self, connection: ServerConnection, request: Request) -> Response:
        """The websockets adapter: the HTTP response to a ``GET /join`` request."""
        remote = connection.remote_address
        where = f"{remote[0]}:{remote[1]}" if isinstance(remote, tuple) else str(remote)
        result = self.answer(
            request.headers.get(JOIN_NODE_HEADER), request.headers.get(JOIN_PROOF_HEADER), where
        )
        if result.status is not HTTPStatus.OK:
            log.warning("join refused from %s: %s", where, result.body.strip())
        response = connection.respond(result.status, result.body)
        response.headers["Cache-Control"] = "no-store"
        return response
