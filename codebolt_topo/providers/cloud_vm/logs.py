"""A cloud-vm node's log, read on its host over the node's pooled SSH route.

The daemon writes ``node.log`` in its directory on the host (:mod:`.remote_main`); ``codebolt
logs`` reads it with ``cat``, or follows it with ``tail -F`` (a replaced or truncated file is
picked up again) until the reader stops: the channel is closed then, and sshd ends the command
with its session.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator

import asyncssh

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.cloud_vm.connect import SshRoute, ssh_error

__all__ = ["remote_log"]


async def remote_log(route: SshRoute, path: str, *, follow: bool) -> AsyncIterator[str]:
    """The lines of ``path`` on the route's host (without their newline); with ``follow``,
    then each new one until the caller stops iterating."""
    quoted = shlex.quote(path)
    command = f"tail -n +1 -F {quoted}" if follow else f"cat {quoted}"
    try:
        process = await route.target.create_process(command, encoding="utf-8", errors="replace")
    except (OSError, asyncssh.Error) as error:
        raise ssh_error(route.settings, error) from None
    try:
        async for line in process.stdout:
            if line:  # asyncssh may end with an empty read at EOF: no line
                yield line.rstrip("\n")
        result = await process.wait()
        if result.exit_status not in (0, None):
            detail = str(result.stderr or "").strip() or f"exit {result.exit_status}"
            raise ProviderError(f"ssh {route.settings.host}: reading {path}: {detail}")
    except (OSError, asyncssh.Error) as error:
        raise ssh_error(route.settings, error) from None
    finally:
        process.close()  # a followed tail ends with its channel
        await process.wait_closed()
