"""``exec`` and ``sync``: work and history sent along the edges of a running topology.

The wrappers only: the streaming (asyncio, signals) lives in :mod:`codebolt_topo.cli.exec_command`
and :mod:`codebolt_topo.cli.narrative`, imported when the command runs.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["exec_", "sync"]


def exec_(
    args: Annotated[
        list[str],
        typer.Argument(
            help="[FILE] NODE[,NODE...] -- COMMAND [ARGS...]  (FILE when it ends in .yaml, "
            ".yml or .j2)",
            show_default=False,
            metavar="ARGS",
        ),
    ],
    from_node: Annotated[
        str | None, typer.Option("--from", help="Entry node.", metavar="NODE")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds before the command is killed.", metavar="SECONDS"),
    ] = None,
    all_nodes: Annotated[
        bool, typer.Option("--all", help="Every node reachable from the entry, the entry included.")
    ] = False,
    shell: Annotated[
        bool, typer.Option("--shell", help="Run COMMAND as one /bin/sh -c string.")
    ] = False,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Send this process's stdin to the command.")
    ] = False,
    requires: Annotated[
        list[str] | None,
        typer.Option(
            "--requires",
            help="Route to the nearest node offering this capability "
            "(repeatable; with --all: every such node).",
            metavar="CAPABILITY",
        ),
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="before|after|both: each target records its "
            "workspace in its narrative store around the command (same request).",
            metavar="WHEN",
        ),
    ] = None,
    objective: Annotated[
        str | None, typer.Option("--objective", help="With --snapshot.", metavar="ID")
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", help="With --snapshot.", metavar="ID")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="With --snapshot.", metavar="ID")] = None,
    no_broker: Annotated[
        bool,
        typer.Option(
            "--no-broker",
            help="Neither use nor start the topology's exec broker (CODEBOLT_BROKER=0 too).",
        ),
    ] = False,
) -> None:
    """Run a command on a node (or several), routed along the edges; output streams back.

    Later calls for the same topology file go through a warm broker (like ssh's ControlMaster):
    see cli/broker_client.py."""
    from codebolt_topo.cli.exec_command import run_exec
    from codebolt_topo.cli.narrative import snapshot_request

    data = sys.stdin.buffer.read() if stdin else None
    raise typer.Exit(
        run_exec(
            args,
            from_node=from_node,
            timeout=timeout,
            all_nodes=all_nodes,
            shell=shell,
            stdin=data,
            requires=requires or None,
            snapshot=snapshot_request(snapshot, objective, thread, run),
        )
    )


def sync(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[FILE] [EDGE...]: edges as a->b (default: every edge with sync).",
            show_default=False,
            metavar="ARGS",
        ),
    ] = None,
) -> None:
    """Move narrative history along the edges that declare sync: push, pull or both."""
    from codebolt_topo.cli.exec_command import parse_exec_args
    from codebolt_topo.cli.narrative import run_sync

    file, edges = parse_exec_args(list(args or []))
    run_sync(file, edges or None)
