"""Topology files as Jinja2 templates, rendered before validation.

A file is rendered when its name ends in ``.j2``/``.jinja`` or when it contains ``{{`` or
``{%``. Variables come from ``--var name=value`` and ``--vars-file`` (YAML), held in
:data:`TEMPLATE_VARS` for the duration of a command. Undefined variables are errors (a typo must
not silently render as an empty string).

Errors must still point at the template's lines. Jinja reports its own errors with template line
numbers; for YAML and schema errors found in the rendered text, :class:`LineMap` maps each
rendered line back to the template line that produced it (text outside blocks matches line for
line; lines produced by a loop map to the loop's body).
"""

from __future__ import annotations

import difflib
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebolt_topo.errors import Location, TopologyError, ValidationIssue

__all__ = ["TEMPLATE_VARS", "LineMap", "is_template", "render_template"]

TEMPLATE_VARS: ContextVar[dict[str, Any] | None] = ContextVar("template_vars", default=None)


def is_template(path: Path, text: str) -> bool:
    return path.suffix in (".j2", ".jinja") or "{{" in text or "{%" in text


@dataclass(frozen=True, slots=True)
class LineMap:
    """Rendered line number (1-based) → template line number."""

    lines: tuple[int, ...]

    def template_line(self, rendered: int) -> int:
        if not self.lines:
            return rendered
        return self.lines[min(max(rendered, 1), len(self.lines)) - 1]

    @classmethod
    def between(cls, template: str, rendered: str) -> LineMap:
        source = template.splitlines()
        output = rendered.splitlines()
        mapping: list[int] = []
        last = 1
        matcher = difflib.SequenceMatcher(a=source, b=output, autojunk=False)
        for tag, a0, a1, b0, b1 in matcher.get_opcodes():
            for offset in range(b1 - b0):
                if tag == "equal":
                    last = a0 + offset + 1
                elif a1 > a0:
                    last = a0 + min(offset, a1 - a0 - 1) + 1
                mapping.append(last)
        return cls(tuple(mapping))


def render_template(file: str, text: str) -> tuple[str, LineMap]:
    """Render ``text`` with the current variables; template errors name the template line."""
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    variables = TEMPLATE_VARS.get() or {}
    try:
        rendered = env.from_string(text).render(**variables)
    except jinja2.TemplateSyntaxError as error:
        raise TopologyError(
            [ValidationIssue(Location(file, error.lineno), "", f"template: {error.message}")]
        ) from None
    except Exception as error:  # anything the template's own expressions raise
        line = _template_line(error)
        known = ", ".join(sorted(variables)) or "none given"
        message = (error.message if isinstance(error, jinja2.TemplateError) else None) or str(error)
        if "Undefined" in message:  # e.g. range(undefined): Python's error names Jinja's type
            message = f"a variable used on this line is undefined ({message})"
        raise TopologyError(
            [
                ValidationIssue(
                    Location(file, line),
                    "",
                    f"template: {message} (variables: {known}; pass --var name=value)",
                )
            ]
        ) from None
    return rendered, LineMap.between(text, rendered)


def _template_line(error: BaseException) -> int | None:
    """Jinja rewrites tracebacks so template frames carry template line numbers."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
