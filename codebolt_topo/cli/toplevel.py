"""The top level of ``codebolt``: its global options, and an application holding one command.

``codebolt validate`` used to import every command module and have typer build all 31
commands' parameters (signatures, type hints, one click parameter each) before parsing its own:
53 ms of CPU of a cold ``validate`` (0.36 -> 0.30 s on this loaded box). :func:`app_for` gives
:func:`~codebolt_topo.cli.main.main` an application with the global options and the one
top-level command the arguments name, built from :data:`COMMANDS`; anything else (``--help``, a
command group, completion, a typo) gets the whole application of :mod:`codebolt_topo.cli.app`.
``tests/cli/test_cli_toplevel.py`` holds the table to the whole application's commands.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from codebolt_topo.cli.options import VAR_HELP, VARS_FILE_HELP, Command, with_template_options

__all__ = ["COMMANDS", "app_for", "codebolt_typer", "global_options"]

HELP = "Turn a topology.yaml into a live network of coordinated execution environments."

#: Each top-level command (not a group): name -> (module in codebolt_topo.cli, function, whether
#: it reads a topology and so takes --var/--vars-file after the command too).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "init": ("file_commands", "init", False),
    "validate": ("file_commands", "validate", True),
    "providers": ("file_commands", "providers", False),
    "plan": ("lifecycle", "plan", True),
    "apply": ("lifecycle", "apply", True),
    "destroy": ("lifecycle", "destroy", True),
    "status": ("status_command", "status", True),
    "describe": ("describe_command", "describe", True),
    "logs": ("logs_command", "logs", True),
    "watch": ("watch_command", "watch", True),
    "force-unlock": ("state_commands", "force_unlock", True),
    "graph": ("file_commands", "graph", True),
    "exec": ("work_commands", "exec_", True),
    "sync": ("work_commands", "sync", True),
    "join": ("join_commands", "join", False),
    "leave": ("join_commands", "leave", False),
}

#: Global options that take a value: the command is the first word that is not one of these
#: (or their value) and does not start with '-'.
_VALUED = ("--var", "--vars-file", "--backend")


def codebolt_typer() -> typer.Typer:
    """The application object, as both the whole CLI and a one-command one are built."""
    app = typer.Typer(
        name="codebolt",
        help=HELP,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(global_options)
    return app


def _version(value: bool) -> None:
    if value:
        from codebolt_topo import __version__

        print(f"codebolt {__version__}")
        raise typer.Exit()


def global_options(
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help=VAR_HELP, metavar="NAME=VALUE"),
    ] = None,
    vars_file: Annotated[
        Path | None, typer.Option("--vars-file", help=VARS_FILE_HELP, metavar="FILE")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Where the state lives for this command: file or postgres (wins over the "
            "file's backend: block; CODEBOLT_BACKEND does the same).",
            metavar="KIND",
        ),
    ] = None,
) -> None:
    """Turn a topology.yaml into a live network of coordinated execution environments."""
    if backend is not None:
        import os

        os.environ["CODEBOLT_BACKEND"] = backend  # the processes started from here agree
    if var or vars_file:
        from codebolt_topo.cli.template_vars import add_template_vars

        add_template_vars(var or [], vars_file)


def command_named(args: list[str]) -> str | None:
    """The top-level command ``args`` name (``--var x=1 validate t.yaml``: validate), if any."""
    index = 0
    while index < len(args):
        word = args[index]
        if word in _VALUED:
            index += 2
        elif word.startswith("-"):
            index += 1
        else:
            return word
    return None


def app_for(args: list[str]) -> typer.Typer:
    """An application holding only the command ``args`` name when :data:`COMMANDS` knows it
    (help asked for anywhere included: ``codebolt validate --help``), else the whole CLI."""
    name = command_named(args)
    if name not in COMMANDS or "--version" in args or "--help" in args[: args.index(name)]:
        from codebolt_topo.cli.app import app

        return app
    module, function, reads = COMMANDS[name]
    callback = getattr(importlib.import_module(f"codebolt_topo.cli.{module}"), function)
    app = codebolt_typer()
    app.command(name, cls=Command)(with_template_options(callback) if reads else callback)
    return app
