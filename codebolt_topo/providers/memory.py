"""An in-memory provider: nodes that exist only as entries in a dict.

For planner, engine and reconciler tests and benchmarks at scales no machine can run for real
(thousands of nodes), in the spirit of httpx's ``MockTransport``: it is shipped in the package so
tests need no patching. It is not registered as an entry point, so users never see it; pass an
instance to :class:`~codebolt_topo.engine.runner.Engine` (``providers=``) to use it.
"""

from __future__ import annotations

import itertools
from typing import Any, TypedDict

from codebolt_topo.providers.base import (
    Category,
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
)

__all__ = ["MemoryHandle", "MemoryProvider"]


class MemoryHandle(TypedDict):
    """A memory node's number."""

    id: int


class MemoryProvider(Provider[MemoryHandle]):
    """Creates nothing; remembers what it was asked to create; can be told a node died."""

    name = "memory"
    category = Category.LOCAL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alive: dict[int, str] = {}
        self.stopped: set[int] = set()
        self._ids = itertools.count(1)
        self._ports = itertools.count(20000)

    async def create(self, launch: NodeLaunch) -> Placement[MemoryHandle]:
        handle_id = next(self._ids)
        self.alive[handle_id] = launch.name
        return Placement(handle={"id": handle_id}, host="127.0.0.1", port=next(self._ports))

    async def inspect(self, handle: MemoryHandle) -> Observation:
        if handle.get("id") in self.alive:
            return Observation(alive=True)
        if handle.get("id") in self.stopped:
            return Observation(
                alive=False, reason=f"memory node {handle.get('id')} stopped", clean_exit=True
            )
        return Observation(alive=False, reason=f"memory node {handle.get('id')} is gone", gone=True)

    async def destroy(self, handle: MemoryHandle, *, grace: float = 5.0) -> None:
        self.alive.pop(handle.get("id", -1), None)

    async def discover(self) -> list[Discovered[MemoryHandle]]:
        return [Discovered(node=name, handle={"id": i}) for i, name in self.alive.items()]

    def kill(self, node: str) -> None:
        """Make ``node`` vanish, as a crash would."""
        for handle_id, name in list(self.alive.items()):
            if name == node:
                del self.alive[handle_id]

    def stop(self, node: str) -> None:
        """Make ``node`` exit cleanly, as a stop on request would."""
        for handle_id, name in list(self.alive.items()):
            if name == node:
                del self.alive[handle_id]
                self.stopped.add(handle_id)
