"""Knowing when a node's container is ready, and what it found inside itself.

No ready-fd crosses a container boundary, so readiness is read from the container's log: the
daemon logs ``listening on host:port`` only after its socket is bound, which is the moment the
published port starts answering (docker's proxy accepts connections earlier, so a TCP probe would
lie). The entrypoint logs one ``codebolt-capabilities {json}`` line before that. A container that
exits while we wait is reported with the tail of its log, OOM kills and exit codes included.

The log is followed (one streaming request, the line seen the moment it is written), not polled:
N nodes starting together each fetched the whole log and inspected the container two to twenty
times a second, engine CPU their starting daemons needed, and a poll saw the line up to its
pause (250 ms) late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.docker.container_main import CAPABILITIES_MARKER
from codebolt_topo.providers.docker.engine import DockerEngine, in_thread
from codebolt_topo.providers.docker.logs import container_log

__all__ = ["READY_TIMEOUT", "describe_exit", "log_tail", "parse_capabilities", "wait_ready"]

READY_TIMEOUT = 30.0
_LISTENING = " listening on "


def parse_capabilities(log: str) -> dict[str, Any]:
    """The capabilities the entrypoint detected, from its log line (empty if absent)."""
    for line in log.splitlines():
        _, marker, payload = line.partition(CAPABILITIES_MARKER)
        if marker:
            try:
                found: dict[str, Any] = json.loads(payload)
            except ValueError:
                return {}
            return found
    return {}


def describe_exit(state: dict[str, Any]) -> str:
    """Why a container is not running, in words (``State`` of ``docker inspect``)."""
    status = state.get("Status", "unknown")
    if state.get("OOMKilled"):
        return f"container was OOM-killed (memory limit), status {status}"
    if status in ("exited", "dead"):
        code = state.get("ExitCode")
        signal = " (SIGKILL)" if code == 137 else " (SIGTERM)" if code == 143 else ""
        return f"container {status} with code {code}{signal}"
    if state.get("Paused"):
        return "container is paused"
    if state.get("Restarting"):
        return "container is restarting"
    return f"container is {status}"


def log_tail(log: str, lines: int = 8) -> str:
    text = [line for line in log.strip().splitlines() if line]
    if not text:
        return ""
    return "; container log:\n  " + "\n  ".join(text[-lines:])


async def wait_ready(
    engine: DockerEngine, container_id: str, node: str, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    """Wait until the daemon in ``container_id`` listens; returns the detected capabilities."""
    lines: list[str] = []
    try:
        async with (
            asyncio.timeout(timeout),
            contextlib.aclosing(container_log(engine, container_id, follow=True)) as log,
        ):
            async for line in log:
                lines.append(line)
                if _LISTENING in line:
                    return parse_capabilities("\n".join(lines))
    except TimeoutError:
        raise ProviderError(
            f"node {node!r}: daemon did not become ready within {timeout:.0f} s"
            f"{log_tail(chr(10).join(lines))}"
        ) from None
    # The log ended: the container stopped.
    attrs = await in_thread(engine.attrs, container_id)
    why = "container disappeared" if attrs is None else describe_exit(attrs.get("State", {}))
    tail = await in_thread(engine.logs, container_id)
    raise ProviderError(f"node {node!r}: daemon did not start: {why}{log_tail(tail)}")
