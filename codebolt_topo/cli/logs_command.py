"""``codebolt logs NODE``: a node's log (see :mod:`codebolt_topo.engine.logs`).

``-f`` follows until Ctrl-C, like ``tail -F``/``kubectl logs -f`` (a replaced node's new log is
picked up); ``--since 10m`` or a date and time, ``--tail N``; ``--json`` prints one JSON object
per line (JSON Lines), so a follower can stream them.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg, NodeArg
from codebolt_topo.cli.output import use_json

__all__ = ["logs"]


def logs(
    node: NodeArg,
    file: FileArg = DEFAULT_FILE,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only lines since a duration ago (30s, 10m, 2h) or a time (2026-11-27T12:00:00).",
            metavar="WHEN",
        ),
    ] = None,
    tail: Annotated[
        int | None,
        typer.Option(
            "--tail",
            "-n",
            help="Only the last N lines (then new ones with -f).",
            metavar="N",
            min=0,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print a node's log: the daemon's own lines, start errors included."""
    use_json(as_json)
    import asyncio

    from codebolt_topo.engine.logs import node_log, parse_since

    start = parse_since(since) if since else None
    out = sys.stdout

    async def run() -> None:
        async for line in node_log(file, node, since=start, tail=tail, follow=follow):
            out.write(json.dumps(line.as_json()) + "\n" if as_json else line.text + "\n")
            out.flush()

    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(run())
