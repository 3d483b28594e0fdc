"""The relayed sync: each bundle pulled out of one node and pushed into the other by the
orchestrator, with each node's admin token (how ``codebolt sync`` moved history before nodes
synced along their edges themselves, ``node/narrative_sync.py``).

It stays for two reasons: a sender started before the ``sync`` message existed answers it
``bad-request`` (unknown message type), and is then synced this way rather than not at all; and
``benchmarks/bench_sync.py`` measures node to node against it, in the same run. Every bundle
byte crosses the orchestrator twice: out of the source, into the receiver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codebolt_topo.errors import ExecError

if TYPE_CHECKING:
    from codebolt_topo.engine.sync import EdgeSync, Transfer
    from codebolt_topo.narrative.remote import NodeNarrative

__all__ = ["predates_sync", "relay_transfer"]


def predates_sync(exc: ExecError) -> bool:
    """Whether a ``sync`` was refused because the node does not know the message (a node
    started before it existed), rather than because the sync failed."""
    return exc.code == "bad-request" and "unknown message type 'sync'" in str(exc)


async def relay_transfer(
    transfer: Transfer, source: NodeNarrative, receiver: NodeNarrative
) -> EdgeSync:
    """Move what *receiver* lacks of *source*'s history through this process (see the module)."""
    from codebolt_topo.engine.sync import EdgeSync
    from codebolt_topo.node.narrative_sync import report_summary

    bundle = await source.export(await receiver.have())
    done = EdgeSync(transfer, bytes=len(bundle), route="orchestrator")
    if bundle:
        done.take(report_summary(await receiver.import_bundle(bundle, transfer.source)))
    return done
