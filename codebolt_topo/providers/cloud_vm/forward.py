"""Forward a local TCP port to a port on the far side of an SSH route, surviving reconnects.

Why not ``asyncssh.forward_local_port``: its listener belongs to one SSH connection, so when the
connection drops the local port closes, and re-binding it later may fail or race another
process. Here the local listener lives as long as the forwarder; only the SSH route behind it is
replaced. Each accepted connection opens one ``direct-tcpip`` channel on the current route; while
the route is down, new connections wait for it (up to :data:`WAIT_FOR_ROUTE` seconds) instead of
failing at once, and connections open when it dropped end (their channel died with it), which
the node protocol's clients already handle by reconnecting and resuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncssh

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.cloud_vm.connect import SshRoute, connect_route
from codebolt_topo.providers.cloud_vm.settings import SshSettings

__all__ = ["Forwarder"]

log = logging.getLogger("codebolt_topo.ssh_tunnel")

WAIT_FOR_ROUTE = 15.0
RECONNECT_FIRST, RECONNECT_CAP = 0.2, 5.0
CHUNK = 256 * 1024

Reader = asyncio.StreamReader | asyncssh.SSHReader[bytes]
Writer = asyncio.StreamWriter | asyncssh.SSHWriter[bytes]


class Forwarder:
    """``127.0.0.1:<port>`` here → ``remote_host:remote_port`` as the SSH target sees it."""

    def __init__(self, settings: SshSettings, remote_host: str, remote_port: int) -> None:
        self.settings = settings
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.route: SshRoute | None = None
        self.reconnects = 0
        self._up = asyncio.Event()
        self._clients: set[asyncio.Task[None]] = set()

    async def maintain(self, stop: asyncio.Event, first: asyncio.Future[None]) -> None:
        """Keep a route up until ``stop``; ``first`` gets the outcome of the first attempt
        (a failing first connect ends the forwarder: the caller reports it, nobody retries)."""
        delay = RECONNECT_FIRST
        while not stop.is_set():
            try:
                route = await connect_route(self.settings)
            except ProviderError as error:
                if not first.done():
                    first.set_exception(error)
                    return
                log.warning("reconnect failed (next try in %.1f s): %s", delay, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, RECONNECT_CAP)
                continue
            delay = RECONNECT_FIRST
            self.route = route
            self._up.set()
            if first.done():
                self.reconnects += 1
                log.info("ssh route to %s is back", self.settings.host)
            else:
                first.set_result(None)
            stopped = asyncio.ensure_future(stop.wait())
            closed = asyncio.ensure_future(route.wait_closed())
            await asyncio.wait({stopped, closed}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (stopped, closed):
                waiter.cancel()
            await asyncio.gather(stopped, closed, return_exceptions=True)
            self._up.clear()
            self.route = None
            if not stop.is_set():
                log.warning("ssh route to %s dropped; reconnecting", self.settings.host)
            await route.close()

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """asyncio.start_server callback: splice one local connection onto a new channel."""
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._splice(reader, writer)
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _splice(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._up.wait(), WAIT_FOR_ROUTE)
        except TimeoutError:
            log.warning("no ssh route within %.0f s; dropping a local connection", WAIT_FOR_ROUTE)
            return
        route = self.route
        if route is None:
            return
        try:
            far_reader, far_writer = await route.target.open_connection(
                self.remote_host, self.remote_port
            )
        except (OSError, asyncssh.Error) as error:
            log.warning(
                "cannot open %s:%d on the far side: %s", self.remote_host, self.remote_port, error
            )
            return
        try:
            await asyncio.gather(_pipe(reader, far_writer), _pipe(far_reader, writer))
        finally:
            far_writer.close()

    async def close(self) -> None:
        """End every spliced connection (the route itself ends with :meth:`maintain`)."""
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)


async def _pipe(source: Reader, sink: Writer) -> None:
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (OSError, asyncssh.Error):
        sink.close()
