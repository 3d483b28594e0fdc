"""A docker node's log: its container's log (the daemon logs to stdout and stderr), through the
Docker SDK, followed as it grows.

The SDK's log stream is a blocking iterator of byte chunks; a thread drains it into the event
loop, so following one container's log holds up nothing else. Chunks are cut into lines here (a
chunk may end mid-line). Closing the stream (the reader stopped, Ctrl-C) ends the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.docker.engine import DockerEngine

__all__ = ["container_log"]

_END = object()


def _pump(stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
    """Hand every chunk of ``stream`` to ``queue`` (from this thread), then the end or an error."""

    def hand(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(queue.put_nowait, item)

    try:
        for chunk in stream:
            hand(bytes(chunk))
    except Exception as error:  # a closed stream or a lost engine: the reader decides
        hand(error)
    finally:
        hand(_END)


async def container_log(
    engine: DockerEngine, container_id: str, *, follow: bool
) -> AsyncGenerator[str, None]:
    """The lines of the container's log (without their newline); with ``follow``, then each new
    one until the caller stops iterating or the container goes."""
    stream = await asyncio.to_thread(engine.log_stream, container_id, follow=follow)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    closed = False
    pump = threading.Thread(
        target=_pump,
        args=(stream, loop, queue),
        daemon=True,
        name=f"docker-log {container_id[:12]}",
    )
    pump.start()
    buffer = b""
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                if closed:
                    break
                raise ProviderError(f"docker: reading the log of {container_id[:12]}: {item}")
            buffer += item
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if buffer:
            yield buffer.decode(errors="replace")
    finally:
        closed = True
        await asyncio.to_thread(stream.close)  # unblocks the pump
