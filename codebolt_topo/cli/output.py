"""How the CLI writes: JSON when asked (errors too), colour on terminals only.

A command that reads takes ``--json``; calling :func:`use_json` records that, so that when the
command fails :func:`report_error` prints the error as JSON on stdout (``file``, ``line``,
``column``, ``field``, ``message`` for each problem of a topology file), as well as the usual
``error:`` lines on stderr, with the same exit code: a script reads one document either way.

Colour follows the usual conventions: never when the stream is not a terminal or ``NO_COLOR``
is set (to anything), or ``TERM`` is ``dumb``; forced with ``FORCE_COLOR`` or
``CLICOLOR_FORCE``. Only ANSI escapes here, so colouring a plan costs no import.

The exec broker writes into a caller's terminal from another process, whose environment is not
the caller's: it writes through a :class:`TerminalText`, which carries the caller's
:class:`Terminal` (its width and what its environment says of colour), and everything here asks
the stream before asking this process.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple, TextIO

from codebolt_topo.errors import TopologyError

__all__ = [
    "TERMINAL_ENV",
    "Terminal",
    "TerminalText",
    "colour_on",
    "colour_wanted",
    "error_document",
    "json_mode",
    "paint",
    "paint_plan",
    "print_json",
    "report_error",
    "reset_output",
    "use_json",
]

_JSON = {"on": False}
_CODES = {
    "green": "32",
    "yellow": "33",
    "red": "31",
    "magenta": "35",
    "cyan": "36",
    "bold": "1",
    "dim": "2",
    "bold red": "1;31",
}
_PLAN_LINE = re.compile(r"^(\s+)(-/\+|\+|~|-)( \S+)")
_SYMBOL_STYLE = {"+": "green", "~": "yellow", "-/+": "magenta", "-": "red"}


def use_json(flag: bool) -> bool:
    """Record that this command writes JSON (its errors then do too); returns ``flag``."""
    if flag:
        _JSON["on"] = True
    return flag


def reset_output() -> None:
    """Forget an earlier command's ``--json`` (a new command starts in text mode)."""
    _JSON["on"] = False


def json_mode() -> bool:
    return _JSON["on"]


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str), flush=True)


#: What of a caller's environment decides how its terminal is written to.
TERMINAL_ENV = ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TERM", "COLORTERM", "COLUMNS")


def colour_wanted(environ: Mapping[str, str], terminal: bool) -> bool:
    """Whether output to a stream that is (or is not) a ``terminal`` gets colour, by the
    conventions above, in ``environ``."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR") or environ.get("CLICOLOR_FORCE", "0") not in ("", "0"):
        return True
    if environ.get("TERM") == "dumb":
        return False
    return terminal


class Terminal(NamedTuple):  # not a dataclass: that import costs every command 2-3 ms
    """A caller's terminal as another process must write to it."""

    width: int
    colour: bool
    color_system: str | None
    """rich's name for the colours it takes: ``truecolor``, ``256``, ``standard``, None."""

    @classmethod
    def of(cls, environ: Mapping[str, str], columns: int) -> Terminal:
        """The terminal ``columns`` wide whose program runs in ``environ``: ``COLUMNS`` there
        wins, and its colours are the ones rich would find there (bold and italics stay when
        colour is off, as they do for rich)."""
        width = environ.get("COLUMNS", "")
        term = environ.get("TERM", "")
        system: str | None = "standard"
        if term in ("dumb", "unknown"):
            system = None
        elif environ.get("COLORTERM") in ("truecolor", "24bit"):
            system = "truecolor"
        elif term.rpartition("-")[2] in ("256color", "kitty"):
            system = "256"
        return cls(
            width=int(width) if width.isdigit() else columns,
            colour=colour_wanted(environ, terminal=True),
            color_system=system,
        )


class TerminalText(io.StringIO):
    """Text bound for a caller's terminal, gathered here first."""

    def __init__(self, terminal: Terminal) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return True


def colour_on(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``."""
    terminal = getattr(stream, "terminal", None)
    if isinstance(terminal, Terminal):
        return terminal.colour
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return colour_wanted(os.environ, tty)


def paint(text: str, style: str, stream: TextIO) -> str:
    """``text`` in ``style`` when ``stream`` gets colour, else as is."""
    if not colour_on(stream):
        return text
    return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def paint_plan(text: str, stream: TextIO) -> str:
    """A rendered plan with each action's symbol and node coloured by kind (+ ~ -/+ -)."""
    if not colour_on(stream):
        return text
    lines = []
    for line in text.split("\n"):
        match = _PLAN_LINE.match(line)
        if match:
            indent, symbol, node = match.groups()
            style = _SYMBOL_STYLE[symbol]
            line = (
                f"{indent}{paint(symbol, style, stream)}{paint(node, 'bold', stream)}"
                f"{line[match.end() :]}"
            )
        lines.append(line)
    return "\n".join(lines)


def error_document(error: BaseException, exit_code: int) -> dict[str, Any]:
    """The JSON form of a failure: one entry per problem, each with the same fields."""
    kind = type(error).__name__
    entries: list[dict[str, Any]] = []
    if isinstance(error, TopologyError):
        entries = [
            {
                "kind": kind,
                "file": issue.location.file,
                "line": issue.location.line,
                "column": issue.location.column,
                "field": issue.field or None,
                "message": issue.message,
            }
            for issue in error.issues
        ]
    else:
        failures = getattr(error, "failures", None)
        if isinstance(failures, dict) and failures:
            entries = [
                {
                    "kind": kind,
                    "file": None,
                    "line": None,
                    "column": None,
                    "field": None,
                    "node": node,
                    "message": message,
                }
                for node, message in sorted(failures.items())
            ]
        else:
            entry: dict[str, Any] = {
                "kind": kind,
                "file": None,
                "line": None,
                "column": None,
                "field": None,
                "message": str(error),
            }
            for extra in ("node", "hop", "code"):
                if getattr(error, extra, None) is not None:
                    entry[extra] = getattr(error, extra)
            entries = [entry]
    return {"ok": False, "exit_code": exit_code, "errors": entries}


def report_error(error: BaseException, exit_code: int, *, prefix: str = "error") -> None:
    """``error:`` lines on stderr (red on a terminal); the JSON document too in JSON mode."""
    if json_mode():
        print_json(error_document(error, exit_code))
    label = paint(f"{prefix}:", "bold red", sys.stderr)
    for line in str(error).splitlines() or [""]:
        print(f"{label} {line}", file=sys.stderr, flush=True)
