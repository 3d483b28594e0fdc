"""Arguments and options shared by the commands, so each reads and is documented the same way.

Only typer and the standard library at import time: every command module imports this, and
``codebolt --help`` must stay fast.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

__all__ = [
    "DEFAULT_FILE",
    "VARS_FILE_HELP",
    "VAR_HELP",
    "AsJson",
    "Command",
    "FileArg",
    "LockTimeout",
    "NodeArg",
    "ShowSensitive",
    "complete_nodes",
    "err",
    "with_template_options",
]

VAR_HELP = "Template variable NAME=VALUE (repeatable; before or after the command)."
VARS_FILE_HELP = "YAML mapping of template variables."
_Command = TypeVar("_Command", bound=Callable[..., Any])

DEFAULT_FILE = Path("topology.yaml")


def complete_nodes(ctx: typer.Context, incomplete: str) -> list[str]:
    """Node names of the command's FILE (default ./topology.yaml) for shell completion."""
    try:
        from codebolt_topo.plan.validate import validate_file

        file = ctx.params.get("file") or DEFAULT_FILE
        names = list(validate_file(Path(file)).topology.nodes)
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


FileArg = Annotated[
    Path,
    typer.Argument(
        help="Topology file (.yaml, or a .j2 template).", show_default=True, metavar="[FILE]"
    ),
]
NodeArg = Annotated[
    str,
    typer.Argument(help="A node of the topology.", metavar="NODE", autocompletion=complete_nodes),
]
LockTimeout = Annotated[
    float,
    typer.Option(
        "--lock-timeout", help="Wait this many seconds for the state lock.", metavar="SECONDS"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (errors too).")]
ShowSensitive = Annotated[
    bool,
    typer.Option("--show-sensitive", help="Show env values instead of (sensitive)."),
]


def err(message: str) -> None:
    """One line on stderr, flushed (progress and warnings, never data)."""
    print(message, file=sys.stderr, flush=True)


_TEMPLATE_OPTIONS = (
    inspect.Parameter(
        "var",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            list[str] | None, typer.Option("--var", help=VAR_HELP, metavar="NAME=VALUE")
        ],
    ),
    inspect.Parameter(
        "vars_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option("--vars-file", help=VARS_FILE_HELP, metavar="FILE")
        ],
    ),
)


def with_template_options(command: _Command) -> _Command:
    """``command`` taking ``--var`` and ``--vars-file`` too, so they work after the subcommand
    (``codebolt validate t.yaml.j2 --var n=3``) as well as before it."""
    signature = inspect.signature(command, eval_str=True)
    hints = typing.get_type_hints(command, include_extras=True)
    parameters = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]

    @functools.wraps(command)
    def wrapper(
        *args: Any, var: list[str] | None = None, vars_file: Path | None = None, **kwargs: Any
    ) -> Any:
        if var or vars_file:
            from codebolt_topo.cli.template_vars import add_template_vars

            add_template_vars(var or [], vars_file)
        return command(*args, **kwargs)

    del wrapper.__wrapped__  # typer must read the signature below, not the command's
    full = [*parameters, *_TEMPLATE_OPTIONS]
    wrapper.__signature__ = signature.replace(parameters=full)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in full}
    return typing.cast(_Command, wrapper)


class Command(TyperCommand):
    """A command whose help never shows a Python type: typer writes ``<list[str]>`` or
    ``<path>`` after every argument and after each option without a metavar, which means
    nothing to a user. Arguments show their metavar alone; an option without one gets its
    name in capitals (``--state-dir STATE_DIR``), as click itself would."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.metavar = param.metavar or (param.name or "ARG").upper()
                param.display_type_rich = _no_type  # type: ignore[method-assign]
            elif isinstance(param, TyperOption) and not param.is_flag and not param.metavar:
                param.metavar = (param.name or "VALUE").upper()
        super().format_help(ctx, formatter)


def _no_type(ctx: Any) -> None:
    return None
