"""How the CLI writes: JSON when asked (errors too), colour on terminals only.

A command that reads takes ``--json``; calling :func:`use_json` records that, so that when the
command fails :func:`report_error` prints the error as JSON on stdout (``file``, ``line``,
``column``, ``field``, ``message`` for each problem of a topology file), as well as the usual
``error:`` lines on stderr, with the same exit code: a script reads one document either way.

Colour follows the usual conventions: never when the stream is not a terminal or ``NO_COLOR``
is set (to anything), or ``TERM`` is ``dumb``; forced with ``FORCE_COLOR`` or
``CLICOLOR_FORCE``. Only ANSI escapes here, so colouring a plan costs no import.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, TextIO

from codebolt_topo.errors import TopologyError

__all__ = [
    "colour_on",
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


def colour_on(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR") or os.environ.get("CLICOLOR_FORCE", "0") not in ("", "0"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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
