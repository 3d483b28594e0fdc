"""An e2b node's log: ``node.log`` in its sandbox, read through the SDK's commands API.

The daemon writes its log in the node's directory in the sandbox (:mod:`.install`). ``codebolt
logs`` reads it with ``cat``, or follows it with ``tail -F`` started in the background, whose
output the SDK hands over chunk by chunk (cut into lines here); when the reader stops, the
``tail`` is killed, and a sandbox that ends ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2b import AsyncSandbox

__all__ = ["follow_file"]


async def follow_file(sandbox: AsyncSandbox, path: str) -> AsyncGenerator[str, None]:
    """Every line of ``path`` in ``sandbox`` (without its newline), then each new one, until the
    caller stops iterating or the command ends (the sandbox went)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    command = await sandbox.commands.run(
        f"tail -n +1 -F {shlex.quote(path)}",
        background=True,
        timeout=0,
        on_stdout=queue.put_nowait,
    )
    waiter: asyncio.Future[Any] = asyncio.ensure_future(command.wait())
    waiter.add_done_callback(lambda _: queue.put_nowait(None))
    buffer = ""
    try:
        while (chunk := await queue.get()) is not None:
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                yield line
        if buffer:
            yield buffer
    finally:
        if not waiter.done():
            with contextlib.suppress(Exception):  # already gone with its sandbox: nothing to do
                await command.kill()
        await asyncio.gather(waiter, return_exceptions=True)  # its exit status is no news
