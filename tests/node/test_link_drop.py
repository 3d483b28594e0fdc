"""Issue 3 fault test: a link between two nodes dropped and restored mid-stream.

The other resume tests drop the client's own connection or kill a whole node; here the TCP
connection between two daemons dies while both keep running (a proxy on the a -> b edge aborts
it), and for a while no new connection gets through. A resuming client must see the stream
byte-identical with one exit; a client that does not resume must get an error that names the
hop whose link was lost, and can attach afterwards to get the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import pytest

from codebolt_topo.client import Exit, Failed, Output
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.config import PeerLink

pytestmark = pytest.mark.slow

LINES = 40_000
SCRIPT = "for i in $(seq 1 40); do seq $((i*1000-999)) $((i*1000)); sleep 0.05; done"
REFERENCE = b"".join(b"%d\n" % i for i in range(1, LINES + 1))


class LinkProxy:
    """A TCP relay standing in for the network between two nodes: :meth:`drop` kills every
    connection through it (both ends see a reset) and refuses new ones until :meth:`restore`."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.up = True
        self.pipes: list[asyncio.StreamWriter] = []
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return f"ws://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        if not self.up:
            self._reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            self._reset(writer)
            return
        self.pipes += [writer, up_writer]
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # linger 0: close sends RST, as a dead middlebox would
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        writer.transport.abort()

    def drop(self) -> None:
        self.up = False
        self.dropped += len(self.pipes)
        for writer in self.pipes:
            self._reset(writer)
        self.pipes.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


async def _proxied(cluster: Cluster) -> LinkProxy:
    """Wire the chain a -> b -> c with a's link to b going through a :class:`LinkProxy`."""
    proxy = LinkProxy(cluster.ports["b"])
    url = await proxy.start()
    await cluster.configure(
        a={"peers": {"b": PeerLink(url=url, token=cluster.edge_token("a", "b"))}}
    )
    return proxy


async def _outage(proxy: LinkProxy, seconds: float) -> None:
    proxy.drop()
    await asyncio.sleep(seconds)
    proxy.restore()


async def stream_through_outage(cluster: Cluster, proxy: LinkProxy) -> tuple[bytes, list[object]]:
    """Run :data:`SCRIPT` on c through a (resuming client), cut ``proxy``'s link for 0.6 s once
    20 kB arrived; the bytes received and every other event. Closes ``proxy``."""
    received = bytearray()
    others: list[object] = []
    outage: asyncio.Task[None] | None = None
    try:
        async with cluster.client("a", retries=12) as client:
            async for event in await client.exec("c", shell=SCRIPT):
                if isinstance(event, Output):
                    received += event.data
                    if outage is None and len(received) > 20_000:
                        outage = asyncio.ensure_future(_outage(proxy, 0.6))
                else:
                    others.append(event)
        assert outage is not None
        await outage
    finally:
        await proxy.close()
    return bytes(received), others


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_link_dropped_and_restored_mid_stream_resumes_byte_identical(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([("a", "b"), ("b", "c")], configure=False)

    async def main() -> tuple[bytes, list[object], int, int]:
        proxy = await _proxied(cluster)
        received, others = await stream_through_outage(cluster, proxy)
        return received, others, proxy.dropped, proxy.port

    received, others, dropped, port = asyncio.run(main())
    assert dropped >= 2, "the link was never cut: the test proved nothing"
    assert received == REFERENCE
    assert [e.code for e in others if isinstance(e, Exit)] == [0]  # exactly once
    assert [e for e in others if isinstance(e, Failed)] == []
    assert _port_free(port)


def test_link_dropped_without_resume_names_the_hop_and_attach_finishes(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([("a", "b"), ("b", "c")], configure=False)

    async def main() -> tuple[bytes, Failed, list[int | None]]:
        proxy = await _proxied(cluster)
        head = bytearray()
        try:
            async with cluster.client("a", resume=False) as client:
                handle = await client.exec("c", shell=SCRIPT)
                failure: Failed | None = None
                async for event in handle:
                    if isinstance(event, Output):
                        head += event.data
                        if proxy.up and len(head) > 20_000:
                            proxy.drop()
                    elif isinstance(event, Failed):
                        failure = event
                        break
            assert failure is not None, "the dropped link went unnoticed"
            proxy.restore()
            async with cluster.client("a") as client:
                rest = bytearray()
                codes = []
                async for event in await client.attach(handle.id, "c", {"stdout": len(head)}):
                    if isinstance(event, Output):
                        rest += event.data
                    elif isinstance(event, Exit):
                        codes.append(event.code)
        finally:
            await proxy.close()
        return bytes(head + rest), failure, codes

    stdout, failure, codes = asyncio.run(main())
    assert (failure.node, failure.code) == ("c", "peer-lost")
    assert "'b'" in failure.message, failure.message
    assert stdout == REFERENCE
    assert codes == [0]
