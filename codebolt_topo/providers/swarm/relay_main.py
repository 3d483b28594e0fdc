"""The relay program: a plain TCP forwarder from this machine's loopback to one node's service.

Runs in a container of the node image on the manager (``python -m
codebolt_topo.providers.swarm.relay_main SERVICE PORT``), attached to the topology's overlay
network and published on ``127.0.0.1`` only: the orchestrator reaches the node without any port
open on the swarm's other interfaces (Swarm's ingress would publish on every interface of every
machine). The service name is resolved on every connection, by the engine's DNS on the overlay,
so a task rescheduled on another machine is reached at its new address through the same port:
nothing upstream needs re-pointing. Bytes are forwarded as they are: the node protocol's own
authentication (a token on the handshake) still guards every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

__all__ = ["LISTEN_PORT", "main", "relay"]

LISTEN_PORT = 3100
_CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def _serve_one(
    target: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(target, port)
    except OSError:
        writer.close()  # the task is not there (yet): the caller sees the connection drop
        return
    try:
        await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
    finally:
        for end in (writer, upstream_writer):
            end.close()


async def relay(target: str, port: int, listen: int = LISTEN_PORT) -> None:
    """Forward every connection to ``listen`` to ``target:port`` until cancelled."""
    server = await asyncio.start_server(
        lambda r, w: _serve_one(target, port, r, w), "0.0.0.0", listen
    )
    print(f"relay listening on {listen}, forwarding to {target}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: relay_main SERVICE PORT", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay(args[0], int(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
