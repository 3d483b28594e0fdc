"""What the e2b provider records for a node in the state file: its sandbox and its relay."""

from __future__ import annotations

from typing import NotRequired, TypedDict

__all__ = ["E2bHandle"]


class E2bHandle(TypedDict):
    """The sandbox (``sandbox_id``, ``domain``: where e2b's proxy reaches it) and the relay here
    (``pid``, ``start_time``, its directory ``dir``) with the daemon's ``port`` in the sandbox.
    Only ``sandbox_id`` is sure: a failed start destroys what it had, and ``discover`` finds a
    relay without the domain and port, or a sandbox without its relay."""

    sandbox_id: str
    domain: NotRequired[str]
    pid: NotRequired[int]
    start_time: NotRequired[int | None]
    dir: NotRequired[str]
    port: NotRequired[int]
