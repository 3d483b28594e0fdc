"""``codebolt status``: the running topology, once, as JSON, or live with ``--watch``.

``--watch`` redraws the table in place on a terminal. Off a terminal (``status --watch > file``,
a pipe, CI) there is nothing to redraw: it prints the table once, then one timestamped line per
node whenever what it shows changes (lifecycle, failure, endpoint, process), as ``kubectl get
-w`` does; with ``--json`` one JSON object per such change. Heartbeat latencies are left out of
the comparison, or every line would change every second.

A state file tracked by git is pushed with the next commit, admin tokens included: ``status``
warns about it on stderr (and in its JSON).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg
from codebolt_topo.cli.output import paint, print_json, use_json

if TYPE_CHECKING:
    from codebolt_topo.engine.status import NodeStatus, StatusCollector
    from codebolt_topo.model.state import State

__all__ = ["status"]


def _warnings(file: Path, state: State) -> list[str]:
    from codebolt_topo.engine.gitcheck import tracked_by_git
    from codebolt_topo.engine.statefile import state_dir_for

    path = state_dir_for(file) / f"{state.topology}.state.json"
    if not tracked_by_git(path):
        return []
    return [
        f"{path} is tracked by git and holds every node's admin token: run "
        f"git rm --cached {path} and keep .codebolt/ out of git (codebolt init ignores it)"
    ]


def _document(state: State, rows: list[NodeStatus], warnings: list[str]) -> dict[str, Any]:
    return {
        "topology": state.topology,
        "serial": state.serial,
        "lineage": state.lineage,
        "nodes": [row.as_json() for row in rows],
        "warnings": warnings,
    }


def _warn(lines: list[str], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    for line in lines:
        print(f"{paint('warning:', 'yellow', stream)} {line}", file=stream, flush=True)


async def show_once(
    collector: StatusCollector, file: Path, out: TextIO | None = None, errors: TextIO | None = None
) -> None:
    """One status table (or the no-nodes line) on ``out``, warnings on ``errors``: what a plain
    ``codebolt status`` prints, here or from the exec broker into the caller's descriptors."""
    from codebolt_topo.cli.status_view import print_status

    out = out or sys.stdout
    state, rows = await collector.collect()
    warnings = _warnings(file, state)
    if not rows:
        print(f"Topology {state.topology!r} has no running nodes.", file=out, flush=True)
    else:
        print_status(state, rows, out)
    _warn(warnings, errors)


def _shown(row: NodeStatus) -> tuple[Any, ...]:
    """What a change line reports; heartbeat latency excluded (it changes every pass)."""
    return (
        row.shown_state if row.alive else "FAILED",
        row.reason,
        row.url,
        row.handle.get("pid", row.handle.get("container")),
        row.heartbeat_error != "",
    )


def _change_line(row: NodeStatus) -> str:
    process = row.handle.get("pid", row.handle.get("container", "-"))
    return (
        f"{time.strftime('%H:%M:%S')} {row.name} {row.provider} {row.shown_state} "
        f"{row.url or '-'} {process}"
    )


async def _watch_lines(collector: StatusCollector, interval: float, as_json: bool) -> None:
    import asyncio

    from codebolt_topo.cli.status_view import print_status

    seen: dict[str, tuple[Any, ...]] = {}
    first = True
    while True:
        state, rows = await collector.collect()
        for row in rows:
            if first and not as_json:
                continue
            if seen.get(row.name) != _shown(row):
                if as_json:
                    print(json.dumps({"at": time.time(), **row.as_json()}, default=str), flush=True)
                else:
                    print(_change_line(row), flush=True)
        if first and not as_json:
            print_status(state, rows)
        for gone in set(seen) - {row.name for row in rows}:
            if as_json:
                print(json.dumps({"at": time.time(), "name": gone, "removed": True}), flush=True)
            else:
                print(f"{time.strftime('%H:%M:%S')} {gone} removed", flush=True)
        seen = {row.name: _shown(row) for row in rows}
        first = False
        await asyncio.sleep(interval)


async def _watch_live(collector: StatusCollector, interval: float) -> None:
    import asyncio

    from rich.console import Console
    from rich.live import Live

    from codebolt_topo.cli.status_view import render_table

    state, rows = await collector.collect()
    with Live(render_table(state, rows), console=Console(emoji=False), auto_refresh=False) as view:
        while True:
            await asyncio.sleep(interval)
            state, rows = await collector.collect()
            view.update(render_table(state, rows), refresh=True)


def _joined_here(as_json: bool) -> bool:
    """Show the joined node this directory runs (``codebolt join``); False when there is none."""
    import asyncio

    from codebolt_topo.providers.joined.member import DEFAULT_HOME, JoinedHome, look

    home = JoinedHome(DEFAULT_HOME)
    if not home.exists():
        return False
    shown = asyncio.run(look(home))
    if as_json:
        print_json(shown)
        return True
    state = f"running here (pid {shown['pid']})" if shown["running"] else "not running here"
    print(f"{shown['node']}: joined topology {shown['topology']!r} at {shown['join_url']}; {state}")
    if shown.get("error"):
        print(f"  not answering: {shown['error']}")
    for peer in shown.get("peers", []):
        print(f"  {peer}: link {'open' if peer in shown.get('links', []) else 'not open'}")
    return True


def status(
    file: FileArg = DEFAULT_FILE,
    as_json: AsJson = False,
    live: Annotated[
        bool,
        typer.Option("--watch", help="Refresh until Ctrl-C (off a terminal: a line per change)."),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes.", metavar="SECONDS")
    ] = 1.0,
) -> None:
    """Nodes of the running topology: lifecycle, endpoint, process, heartbeat, hops. On a
    machine that joined a topology (codebolt join here, no topology file): its node."""
    use_json(as_json)
    import asyncio

    if not file.exists() and _joined_here(as_json):
        return

    from codebolt_topo.engine.status import StatusCollector

    collector = StatusCollector(file, one_shot=not live)

    async def once() -> None:
        if not as_json:
            await show_once(collector, file)
            return
        state, rows = await collector.collect()
        warnings = _warnings(file, state)
        print_json(_document(state, rows, warnings))
        _warn(warnings)

    async def run() -> None:
        try:
            if not live:
                await once()
            elif sys.stdout.isatty() and not as_json:
                await _watch_live(collector, interval)
            else:
                await _watch_lines(collector, interval, as_json)
        finally:
            await collector.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
