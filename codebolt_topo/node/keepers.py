"""Links this node keeps open to the peers it sends work to, when asked (``PeerLink.keep``).

A node opens its link to a peer when it first sends that peer work. A joined node
(``provider: joined``) cannot wait that long: nothing can dial it, so the links it opens are
the only way its neighbours, and through them the orchestrator, know it is there (its
heartbeat is a ping over one of them: ``node/presence.py``). For each kept peer one task opens
the link at once and opens it again after any loss, with the dialer's jittered backoff
(100 ms doubling to 5 s, reset after a link that held).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from codebolt_topo.errors import TopoError
from codebolt_topo.node.dialer import FIRST_BACKOFF, MAX_BACKOFF

if TYPE_CHECKING:
    from codebolt_topo.node.router import Router

__all__ = ["LinkKeepers"]

log = logging.getLogger(__name__)


class LinkKeepers:
    """One task per kept peer; follows the runtime config."""

    def __init__(self, node: str, router: Router) -> None:
        self._node = node
        self._router = router
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def update(self, peers: set[str]) -> None:
        """Keep links to ``peers`` open; stop keeping the others."""
        for peer in [p for p in self._tasks if p not in peers]:
            self._tasks.pop(peer).cancel()
        for peer in sorted(peers - set(self._tasks)):
            self._tasks[peer] = asyncio.ensure_future(self._keep(peer))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, peer: str) -> None:
        delay = FIRST_BACKOFF
        loop = asyncio.get_running_loop()
        while True:
            try:
                link = await self._router.link(peer)
            except TopoError as error:
                log.warning(
                    "node %s: cannot open its link to %s: %s",
                    self._node,
                    peer,
                    error,
                    extra={"repeat_key": f"keep {peer}"},
                )
            except Exception:  # a bug must not end the keeping for good
                log.exception("node %s: keeping its link to %s failed", self._node, peer)
            else:
                began = loop.time()
                await link.wait_closed()
                if loop.time() - began >= MAX_BACKOFF:
                    delay = FIRST_BACKOFF
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_BACKOFF)
