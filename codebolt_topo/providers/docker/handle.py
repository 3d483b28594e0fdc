"""What the docker provider records for a node in the state file."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["DockerHandle"]


class DockerHandle(TypedDict):
    """The node's container and the volumes created for it (which ``destroy`` removes).

    ``id`` is set once the container exists (a failed start destroys a handle without it);
    ``sandbox`` and ``detected`` (what the daemon probed in the container) are recorded by
    ``create`` only, not by ``discover``.
    """

    name: str
    sandbox: NotRequired[bool]
    volumes: list[str]
    id: NotRequired[str]
    detected: NotRequired[dict[str, Any]]
