"""``codebolt jobs``: list the jobs running on the nodes, attach to one, cancel one.

The work is :mod:`codebolt_topo.engine.jobs`. A job is named by its request id (what ``jobs``
lists; a unique prefix will do) and, when one request runs on several nodes, ``--node``.
``jobs attach`` streams the job's output from its start (``--new`` from now) and exits with its
status, like the ``exec`` that started it; Ctrl-C detaches and leaves the job running.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg, complete_nodes, err
from codebolt_topo.cli.output import print_json, use_json

__all__ = ["jobs_app"]

jobs_app = typer.Typer(
    help="Jobs running on the nodes: list them (the default), attach to one, cancel one.",
    invoke_without_command=True,
)

JobArg = Annotated[
    str, typer.Argument(help="Job id (or a unique prefix), as jobs lists it.", metavar="JOB")
]
OnNode = Annotated[
    str | None,
    typer.Option(
        "--node",
        help="The node holding the job (when a request ran on several).",
        metavar="NODE",
        autocompletion=complete_nodes,
    ),
]


NodeFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--node", help="Only this node (repeatable).", metavar="NODE", autocompletion=complete_nodes
    ),
]
Finished = Annotated[
    bool, typer.Option("--all", help="Also finished jobs whose output is still held.")
]


@jobs_app.callback()
def _default(
    ctx: typer.Context, node: NodeFilter = None, finished: Finished = False, as_json: AsJson = False
) -> None:
    """``codebolt jobs`` alone lists the jobs of ./topology.yaml (``jobs list FILE`` for
    another file)."""
    if ctx.invoked_subcommand is None:
        list_(DEFAULT_FILE, node, finished, as_json)


@jobs_app.command("list")
def list_(
    file: FileArg = DEFAULT_FILE,
    node: NodeFilter = None,
    finished: Finished = False,
    as_json: AsJson = False,
) -> None:
    """List running (and detached) jobs on every running node."""
    use_json(as_json)
    import asyncio

    from rich.table import Table

    from codebolt_topo.cli.tables import print_table
    from codebolt_topo.engine.jobs import list_jobs

    listing = asyncio.run(list_jobs(file, nodes=node or None, finished=finished))
    if as_json:
        print_json(listing.as_json())
    elif not listing.jobs:
        print(f"No {'held' if finished else 'running'} jobs in topology {listing.topology!r}.")
    else:
        table = Table(title=f"jobs of {listing.topology}", title_justify="left")
        for column in (
            "node",
            "job",
            "command",
            "state",
            "pid",
            "age",
            "stdout",
            "stderr",
            "attached",
        ):
            table.add_column(column)
        for job in listing.jobs:
            table.add_row(
                job.node,
                job.id,
                job.command or "-",
                job.state + (" (paused)" if job.paused else ""),
                str(job.pid or "-"),
                f"{job.age:.0f}s",
                f"{job.stdout} B",
                f"{job.stderr} B",
                str(job.attached),
            )
        print_table(table)
    for name, why in sorted(listing.unreachable.items()):
        err(f"warning: node {name!r} did not answer: {why}")


@jobs_app.command("attach")
def attach(
    job: JobArg,
    file: FileArg = DEFAULT_FILE,
    node: OnNode = None,
    new: Annotated[
        bool,
        typer.Option(
            "--new",
            help="Only output from now on (default: from "
            "the start, as far as the node still holds it).",
        ),
    ] = False,
) -> None:
    """Stream a job's output until it ends; exits with its status. Ctrl-C detaches."""
    import asyncio

    from codebolt_topo.cli.exec_command import follow_handle
    from codebolt_topo.engine.jobs import attach_job

    async def run() -> int:
        async with attach_job(file, job, node=node, from_start=not new) as (found, handle):
            err(f"attached to job {found.id} on {found.node} ({found.state}); Ctrl-C detaches")
            stop = asyncio.Event()
            follow = asyncio.ensure_future(follow_handle(handle, several=False, interrupt=stop.set))
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait({follow, halt}, return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if follow.done():
                return follow.result()
            follow.cancel()
            err(
                f"detached: job {found.id} keeps running on {found.node} "
                f"(codebolt jobs cancel {found.id} stops it)"
            )
            return 130

    raise typer.Exit(asyncio.run(run()))


@jobs_app.command("cancel")
def cancel(
    job: JobArg,
    file: FileArg = DEFAULT_FILE,
    node: OnNode = None,
    as_json: AsJson = False,
) -> None:
    """Kill a job and its whole process tree, as Ctrl-C of its exec would."""
    use_json(as_json)
    import asyncio

    from codebolt_topo.client import Exit
    from codebolt_topo.engine.jobs import cancel_job

    found, ended = asyncio.run(cancel_job(file, job, node=node))
    if isinstance(ended, Exit):
        how = f"signal {ended.signal}" if ended.signal else f"exit code {ended.code}"
    else:
        how = f"{ended.code}: {ended.message}"
    if as_json:
        print_json({"node": found.node, "id": found.id, "cancelled": True, "ended": how})
    else:
        print(f"Cancelled job {found.id} on {found.node} ({how}).")
    sys.stdout.flush()
