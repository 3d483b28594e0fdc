"""The record a node daemon leaves when it stops on request, so a restart policy can tell a
clean stop from a crash.

``restart: on-failure`` must not bring back a node somebody stopped on purpose (SIGTERM to the
daemon, ``docker stop``), while ``always`` does. A process that is gone looks the same either
way, so the daemon writes its pid to ``stopped-cleanly`` in its state directory as the last
step of a graceful stop; the provider that finds the process gone checks for that pid (a
replacement's state directory may hold its predecessor's record, which then names another pid).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CLEAN_STOP_FILE", "record_clean_stop", "stopped_cleanly"]

CLEAN_STOP_FILE = "stopped-cleanly"


def record_clean_stop(state_dir: str | Path) -> None:
    """Note that this process stopped on request (best effort: a full disk is not a crash)."""
    with contextlib.suppress(OSError):
        (Path(state_dir) / CLEAN_STOP_FILE).write_text(f"{os.getpid()}\n")


def stopped_cleanly(state_dir: str | Path | None, pid: int) -> bool:
    """Whether process ``pid`` left the clean-stop record in ``state_dir``."""
    if not state_dir:
        return False
    try:
        return (Path(state_dir) / CLEAN_STOP_FILE).read_text().strip() == str(pid)
    except (OSError, ValueError):
        return False
