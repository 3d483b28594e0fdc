"""The status table (rich), shared by ``status`` and ``status --watch``."""

from __future__ import annotations

import time

from rich.table import Table

from codebolt_topo.engine.status import NodeStatus
from codebolt_topo.model.state import State

__all__ = ["render_table"]

_STYLE = {"RUNNING": "green", "STARTING": "yellow", "STOPPING": "yellow", "FAILED": "bold red"}


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    seconds = max(0.0, time.time() - timestamp)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render_table(state: State, rows: list[NodeStatus]) -> Table:
    table = Table(title=f"topology {state.topology} (serial {state.serial})", title_justify="left")
    for column in ("node", "provider", "state", "since", "heartbeat", "hops", "endpoint", "pid"):
        table.add_column(column)
    for row in rows:
        shown = row.shown_state
        style = _STYLE.get(shown.split(" ")[0].rstrip(","), "")
        if row.heartbeat_error:
            style = "yellow"
        if row.heartbeat_ms is not None:
            beat = f"{row.heartbeat_ms:.1f} ms"
        elif row.last_heartbeat is not None:
            beat = f"none, last {_ago(row.last_heartbeat)}"
        else:
            beat = "-"
        table.add_row(
            row.name, row.provider, f"[{style}]{shown}[/]" if style else shown, _ago(row.since),
            beat, "-" if row.hops is None else str(row.hops), row.url or "-",
            str(row.handle.get("pid", row.handle.get("container", "-"))),
        )
    return table
