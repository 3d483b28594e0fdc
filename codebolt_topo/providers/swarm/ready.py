"""Knowing when a node's task serves, through its relay, and why it does not.

A task is ready when its daemon answers HTTP through the relay on this machine: the relay
accepts connections before the task exists (it dials on demand), so only a status line from the
daemon itself (any, even a refusal of a request without a token) proves the whole path works.
Meanwhile the service's tasks tell what Swarm is doing: one that cannot be placed, or fails to
start twice in a row, is reported with the engine's own words instead of a silent timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.swarm.engine import SwarmEngine

__all__ = ["READY_TIMEOUT", "answers_http", "running_task", "task_problem", "wait_ready"]

#: Long enough for a worker to pull the node image from a registry on a loaded machine.
READY_TIMEOUT = 180.0
_POLL = 0.25
_PROBE = b"GET / HTTP/1.1\r\nHost: codebolt\r\nConnection: close\r\n\r\n"
_FAILED = {"failed", "rejected"}


async def answers_http(port: int, timeout: float = 2.0) -> bool:
    """Whether a daemon answers through the relay at ``127.0.0.1:port``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(_PROBE)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line.startswith(b"HTTP/1.")


def running_task(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The task that runs now (newest first in ``tasks``), if any."""
    for task in tasks:
        status = task.get("Status", {})
        if task.get("DesiredState") == "running" and status.get("State") == "running":
            return task
    return None


def task_problem(tasks: list[dict[str, Any]]) -> str | None:
    """Why the service does not run, when Swarm says it cannot: unplaceable, or failing."""
    failed = [t for t in tasks if t.get("Status", {}).get("State") in _FAILED]
    if len(failed) >= 2:
        status = failed[0].get("Status", {})
        return f"its task failed to start: {status.get('Err') or status.get('Message')}"
    if tasks:
        status = tasks[0].get("Status", {})
        if status.get("State") == "pending" and "no suitable node" in str(status.get("Err", "")):
            return f"no swarm node can take its task: {status.get('Err')}"
    return None


async def wait_ready(
    engine: SwarmEngine, service_id: str, port: int, node: str, timeout: float = READY_TIMEOUT
) -> str:
    """Wait until the daemon of ``service_id`` answers through ``port``; returns the hostname of
    the swarm node that runs it."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = await asyncio.to_thread(engine.tasks, service_id)
        task = running_task(tasks)
        if task is not None and await answers_http(port):
            return await asyncio.to_thread(engine.node_hostname, str(task.get("NodeID", "")))
        problem = task_problem(tasks)
        if problem is not None:
            raise ProviderError(f"node {node!r}: {problem}")
        if time.monotonic() > deadline:
            state = tasks[0].get("Status", {}).get("State", "no task") if tasks else "no task"
            raise ProviderError(
                f"node {node!r}: daemon did not answer within {timeout:.0f} s (task: {state})"
            )
        await asyncio.sleep(_POLL)
