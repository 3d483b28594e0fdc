"""A stream through a link cut with iptables mid-way and restored: what came back, and how.

The script (40,000 numbered lines over ~2 s) runs on ``target`` through ``client``; once 20,000
bytes arrived, ``router``'s namespace drops everything it forwards for 4 s (a laptop's home
router losing its uplink), then forwards again. The caller checks that the output is
:data:`REFERENCE` exactly, with one exit: the stream resumed, byte-identical, nothing doubled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from multihost.network import Lab

from codebolt_topo.client import Exit, Failed, NodeClient, Output

__all__ = ["LINES", "REFERENCE", "SCRIPT", "Outage", "stream_through_outage"]

LINES = 40_000
SCRIPT = "for i in $(seq 1 40); do seq $((i*1000-999)) $((i*1000)); sleep 0.05; done"
REFERENCE = b"".join(b"%d\n" % i for i in range(1, LINES + 1))


@dataclass(frozen=True)
class Outage:
    received: bytes
    exits: list[int | None]
    failures: list[Failed]
    dropped: int
    """Packets iptables dropped while the link was cut (0: it never was)."""

    def check(self) -> None:
        assert self.dropped > 0, "iptables dropped nothing: the link was never cut"
        assert self.received == REFERENCE
        assert self.exits == [0]  # exactly once
        assert self.failures == []


async def _cut(lab: Lab, router: str, seconds: float) -> int:
    lab.run(router, "iptables", "-I", "FORWARD", "-j", "DROP")
    await asyncio.sleep(seconds)
    counters = lab.run(router, "iptables", "-L", "FORWARD", "-v", "-x", "-n").stdout
    lab.run(router, "iptables", "-D", "FORWARD", "-j", "DROP")
    return int(next(line for line in counters.splitlines() if "DROP" in line).split()[0])


async def stream_through_outage(
    lab: Lab, router: str, client: NodeClient, target: str, seconds: float = 4.0
) -> Outage:
    """Run :data:`SCRIPT` on ``target`` through ``client`` (opened with retries), cutting
    ``router``'s forwarding for ``seconds`` once half the output came back."""
    received, exits, failures = bytearray(), [], []
    cutting: asyncio.Task[int] | None = None
    try:
        async for event in await client.exec(target, shell=SCRIPT):
            if isinstance(event, Output):
                received += event.data
                if cutting is None and len(received) > 20_000:
                    cutting = asyncio.ensure_future(_cut(lab, router, seconds))
            elif isinstance(event, Exit):
                exits.append(event.code)
            elif isinstance(event, Failed):
                failures.append(event)
    finally:
        dropped = await cutting if cutting is not None else 0
    return Outage(bytes(received), exits, failures, dropped)
