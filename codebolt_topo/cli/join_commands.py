"""``codebolt join`` and ``codebolt leave``: run a joined node on this (the developer's)
machine, and stop it. Parsing and printing only; the work is in providers/joined/member.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["join", "leave"]

JoinDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        help="Where the joined node keeps its launch config, state and log (0700).",
        metavar="DIR",
    ),
]
_DEFAULT_DIR = Path(".codebolt") / "joined"


def join(
    url: Annotated[
        str | None,
        typer.Argument(
            help="wss://HOST:PORT of the join point, as reachable from here (default: the "
            "address in the credentials file).",
            metavar="URL",
        ),
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(
            "--credentials",
            help="The file 'codebolt state credentials NODE' wrote (used once; a later join "
            "in the same --dir resumes without it).",
            metavar="FILE",
        ),
    ] = None,
    directory: JoinDir = _DEFAULT_DIR,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="Where the node's commands run (default: DIR/node/workspace).",
            metavar="PATH",
        ),
    ] = None,
) -> None:
    """Join a topology from this machine: run the joined node here, dialing its neighbours,
    until Ctrl-C or 'codebolt leave'. 'codebolt exec' from this directory goes through it."""
    from codebolt_topo.providers.joined.member import JoinedHome, run
    from codebolt_topo.providers.joined.member import join as join_topology

    home = JoinedHome(directory)
    join_topology(url, credentials, home, workspace=workspace)
    raise typer.Exit(run(home))


def leave(directory: JoinDir = _DEFAULT_DIR) -> None:
    """Stop the joined node running from this machine: its neighbours see it leave, and the
    orchestrator's status shows it STOPPED. 'codebolt join' in the same directory rejoins."""
    from codebolt_topo.providers.joined.member import JoinedHome
    from codebolt_topo.providers.joined.member import leave as leave_topology

    membership = leave_topology(JoinedHome(directory))
    print(f"{membership.node}: leaving topology {membership.topology!r}")
