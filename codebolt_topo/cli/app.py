"""The typer application: the commands, in the order ``codebolt --help`` lists them.

Each command lives in a module of its group (``lifecycle``: plan/apply/destroy; ``file_commands``:
init/validate/graph/providers; ``status_command``, ``describe_command``, ``logs_command``,
``jobs_command``, ``watch_command``, ``state_commands``, ``work_commands``: exec/sync;
``narrative``); this module only assembles them. Every module imported here imports typer and
the standard library alone at module level: heavy modules (networkx, websockets, pydantic
models, rich) are imported inside the commands, so that ``codebolt --help`` stays fast.

Every command that reads a topology takes the template options (``--var``, ``--vars-file``)
itself, so they are accepted after the subcommand as well as before it. ``codebolt CMD ...`` for
a top-level command builds only that command (cli/toplevel.py); this module is the whole CLI
(``--help``, the groups, completion).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from codebolt_topo.cli import (
    describe_command,
    file_commands,
    join_commands,
    lifecycle,
    logs_command,
    state_commands,
    status_command,
    watch_command,
    work_commands,
)
from codebolt_topo.cli.history_commands import history_app
from codebolt_topo.cli.jobs_command import jobs_app
from codebolt_topo.cli.narrative import narrative_app
from codebolt_topo.cli.options import Command, with_template_options
from codebolt_topo.cli.toplevel import codebolt_typer

__all__ = ["app"]

app = codebolt_typer()


def _reads(command: Callable[..., Any]) -> Callable[..., Any]:
    return with_template_options(command)


def _add(command: Callable[..., Any], name: str | None = None) -> None:
    app.command(name, cls=Command)(command)


_add(file_commands.init)
_add(_reads(file_commands.validate))
_add(file_commands.providers)
_add(_reads(lifecycle.plan))
_add(_reads(lifecycle.apply))
_add(_reads(lifecycle.destroy))
_add(_reads(status_command.status))
_add(_reads(describe_command.describe))
_add(_reads(logs_command.logs))
app.add_typer(jobs_app, name="jobs")
_add(_reads(watch_command.watch))
_add(_reads(state_commands.force_unlock), "force-unlock")
_add(_reads(file_commands.graph))
_add(_reads(work_commands.exec_), "exec")
_add(_reads(work_commands.sync))
_add(join_commands.join)
_add(join_commands.leave)

node_app = typer.Typer(help="Commands that run on a node itself.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(state_commands.state_app, name="state")
app.add_typer(narrative_app, name="narrative")
app.add_typer(history_app, name="history")
for group in (jobs_app, state_commands.state_app, narrative_app, history_app):
    for info in group.registered_commands:
        info.cls = Command
        if info.callback is not None:
            info.callback = _reads(info.callback)


@node_app.command("serve", cls=Command)
def node_serve(
    config: Annotated[
        Path, typer.Option("--config", help="LaunchConfig JSON (mode 0600).", metavar="PATH")
    ],
    ready_fd: Annotated[
        int | None, typer.Option("--ready-fd", help="Write readiness here.", metavar="FD")
    ] = None,
) -> None:
    """Run this machine's node daemon (the ProviderServer on port 3100 by default)."""
    from codebolt_topo.node.daemon import run_daemon

    raise typer.Exit(run_daemon(config, ready_fd))
