"""What the cloud-vm provider records for a node in the state file: both of its processes."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["CloudVmHandle", "RemoteDaemon"]


class RemoteDaemon(TypedDict):
    """The daemon on the host, as ``remote_main launch`` reported it, and its directory."""

    port: int
    pid: int
    start_time: int | None
    dir: str


class CloudVmHandle(TypedDict):
    """The host (its SSH settings, local paths made absolute), the daemon there, and the tunnel
    here (``pid``, ``start_time``; absent once its start failed, or for a daemon found on a host
    without its tunnel) with its local directory (``dir``, which ``destroy`` removes)."""

    ssh: dict[str, Any]
    remote: RemoteDaemon
    dir: NotRequired[str]
    pid: NotRequired[int]
    start_time: NotRequired[int | None]
