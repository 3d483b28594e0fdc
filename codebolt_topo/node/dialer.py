"""The connections this node opens to the senders of its edges (``dial: receiver``).

Where a sender cannot connect to this node (this node is behind NAT, or in a sandbox no one
can dial into), this node dials the sender instead and then serves the sender's requests on
that connection exactly as if the sender had connected: the edge still decides who sends work
(the sender) and who runs it (this node). One task per such edge keeps the connection up:

* it presents the edge's dial token, its name, a fresh nonce and its request clock (the
  sender stamps every ``exec`` on it: the replay guard works as on any link), over TLS with
  its certificate when the URL is ``wss://`` (the sender's certificate must name the sender);
* it refuses a sender that cannot answer the nonce with the proof of the edge's work token
  (``wire/dialing.py``): a stolen dial token or a spoofed address gets no work served;
* it reconnects after any loss with jittered backoff, 100 ms doubling to :data:`MAX_BACKOFF`
  (reset once a link held that long, so a sender that accepts and drops at once is not
  hammered);
  jobs keep running while it is away (detached, as for any dropped caller) and the callers
  resume them over the new connection, byte-identical.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING

from codebolt_topo.errors import ConfigError, TopoError
from codebolt_topo.node.serving import serve_session
from codebolt_topo.wire.config import DialOut
from codebolt_topo.wire.dialing import check_proof, new_nonce
from codebolt_topo.wire.handshake import CLOCK_HEADER, DIAL_HEADER, NONCE_HEADER, PROOF_HEADER
from codebolt_topo.wire.link import open_connection
from codebolt_topo.wire.tls import client_context, is_tls_url

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from codebolt_topo.node.core import NodeCore

__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "Dialers"]

log = logging.getLogger(__name__)
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
"""Seconds between attempts at most: a laptop that was offline for an hour is back within 5 s
of its network, and an unreachable sender costs one attempt per 5 s."""


class Dialers:
    """One dialing task per sender this node dials; follows the runtime config."""

    def __init__(self, core: NodeCore) -> None:
        self._core = core
        self._specs: dict[str, DialOut] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def update(self, wanted: dict[str, DialOut]) -> None:
        """Start dialing new senders, stop those gone, redial those whose settings changed."""
        for sender in [s for s in self._specs if wanted.get(s) != self._specs[s]]:
            self._tasks.pop(sender).cancel()
            del self._specs[sender]
        for sender, spec in wanted.items():
            if sender not in self._specs:
                self._specs[sender] = spec
                self._tasks[sender] = asyncio.ensure_future(self._keep(sender, spec))

    async def close(self) -> None:
        """Stop every dialing task (their sessions detach from their jobs)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._specs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, sender: str, spec: DialOut) -> None:
        delay = FIRST_BACKOFF
        loop = asyncio.get_running_loop()
        while True:
            try:
                ws = await self._dial(sender, spec)
            except TopoError as exc:
                log.warning(
                    "node %s: cannot dial %s: %s",
                    self._core.name,
                    sender,
                    exc,
                    extra={"repeat_key": f"dial {sender}"},
                )
            except Exception:  # a bug must not end the dialing for good
                log.exception("node %s: dialing %s failed", self._core.name, sender)
            else:
                began = loop.time()
                await self._serve(sender, ws)
                if loop.time() - began >= MAX_BACKOFF:  # a link that held: retry at once
                    delay = FIRST_BACKOFF
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_BACKOFF)

    async def _serve(self, sender: str, ws: ClientConnection) -> None:
        """Serve ``sender``'s requests on ``ws`` until it ends (a link that opens and drops at
        once keeps backing off: the caller resets the backoff only after a link that held)."""
        name = self._core.name
        log.info("link %s -> %s open (dialed by %s)", sender, name, name)
        try:
            await serve_session(self._core, sender, ws)
        except Exception:
            log.exception("node %s: serving %s failed", name, sender)
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
        log.info("link %s -> %s lost; dialing again", sender, name)

    async def _dial(self, sender: str, spec: DialOut) -> ClientConnection:
        core = self._core
        nonce = new_nonce()
        headers = {
            DIAL_HEADER: core.name,
            NONCE_HEADER: nonce,
            CLOCK_HEADER: core.clock.header(),
        }
        tls = None
        identity = core.launch.tls
        if is_tls_url(spec.url) and identity is not None and spec.pinned:
            tls = client_context(identity.ca, identity)
        runtime = core.runtime
        keepalive = (runtime.keepalive_interval, runtime.keepalive_timeout)
        ws = await open_connection(
            spec.url, spec.token, sender, keepalive, tls=tls, headers=headers
        )
        answer = ws.response.headers.get(PROOF_HEADER) if ws.response is not None else None
        if not check_proof(answer, runtime.accept.get(sender, ""), sender, core.name, nonce):
            await ws.close(1008, "no proof")
            raise ConfigError(
                f"node at {spec.url} did not prove it is {sender!r} (no valid "
                f"{PROOF_HEADER} for edge {sender} -> {core.name}); not serving it"
            )
        return ws
