"""What the swarm provider records for a node in the state file."""

from __future__ import annotations

from typing import NotRequired, TypedDict

__all__ = ["SwarmHandle"]


class SwarmHandle(TypedDict):
    """The node's service, the secret holding its launch config, and its relay on this machine.

    ``service_id`` and ``relay_id`` are set once they exist (a failed start destroys a handle
    without them); ``swarm_node`` is where its task ran when ``create`` returned (``inspect``
    tells where it runs now).
    """

    service: str
    secret: str
    relay: str
    service_id: NotRequired[str]
    relay_id: NotRequired[str]
    sandbox: NotRequired[bool]
    swarm_node: NotRequired[str]
