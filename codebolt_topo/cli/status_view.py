"""The status table, shared by ``status`` and ``status --watch``: rich on a terminal, plain text
written directly off one (:func:`~codebolt_topo.cli.tables.plain_table`: the same characters,
without rich laying out 500 rows)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from codebolt_topo.engine.status import NodeStatus
from codebolt_topo.model.state import State

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["print_status", "render_table", "status_cells"]

COLUMNS = ("node", "provider", "state", "since", "heartbeat", "hops", "endpoint", "pid", "where")
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


def _title(state: State) -> str:
    return f"topology {state.topology} (serial {state.serial})"


def status_cells(row: NodeStatus) -> tuple[list[str], str]:
    """One row's cells as plain text, and the style of its state cell ('' for none)."""
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
    cells = [
        row.name,
        row.provider,
        shown,
        _ago(row.since),
        beat,
        "-" if row.hops is None else str(row.hops),
        row.url or "-",
        str(row.handle.get("pid", row.handle.get("container", "-"))),
        row.where or "-",
    ]
    return cells, style


def render_table(state: State, rows: list[NodeStatus]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=_title(state), title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        cells, style = status_cells(row)
        cells = [escape(cell) for cell in cells]  # a reason or an IPv6 endpoint holds [brackets]
        if style:
            cells[2] = f"[{style}]{cells[2]}[/]"
        table.add_row(*cells)
    return table


def print_status(state: State, rows: list[NodeStatus], stream: TextIO | None = None) -> None:
    """The table on ``stream`` (stdout): rich, folded and coloured, on a terminal; else the
    plain text rich would print, written directly."""
    from codebolt_topo.cli.tables import plain_table, print_table

    stream = stream or sys.stdout
    if stream.isatty():
        print_table(render_table(state, rows), stream)
        return
    stream.write(plain_table(_title(state), COLUMNS, (status_cells(row)[0] for row in rows)))
    stream.flush()
