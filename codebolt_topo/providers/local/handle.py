"""What the local provider records for a node in the state file."""

from __future__ import annotations

from typing import NotRequired

from codebolt_topo.providers.processes import ProcessHandle

__all__ = ["LocalHandle"]


class LocalHandle(ProcessHandle):
    """The daemon's pid and start time, and its node directory (``dir``, which ``destroy``
    removes; absent from a daemon found by its markers)."""

    dir: NotRequired[str]
