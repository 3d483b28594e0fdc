"""``--var`` and ``--vars-file``: the variables topology templates are rendered with.

Both options are accepted before the subcommand and after it (``codebolt --var n=2 plan`` and
``codebolt plan t.yaml.j2 --var n=2``), so they arrive in several calls; each call adds to what
the earlier ones gave. ``--var`` always wins over a variables file, wherever each was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.template import TEMPLATE_VARS

__all__ = ["add_template_vars", "reset_template_vars", "set_template_vars"]

_FROM_FILES: dict[str, Any] = {}
_FROM_PAIRS: dict[str, Any] = {}


def add_template_vars(pairs: list[str], vars_file: Path | None) -> None:
    """Add variables for this command (a file's, then ``--var`` pairs overriding them)."""
    if vars_file is not None:
        _FROM_FILES.update(_read(vars_file))
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--var {pair!r}: expected NAME=VALUE with NAME a valid identifier")
        _FROM_PAIRS[name] = _scalar(value)
    TEMPLATE_VARS.set({**_FROM_FILES, **_FROM_PAIRS})


def set_template_vars(pairs: list[str], vars_file: Path | None) -> None:
    """Replace the variables with these alone."""
    reset_template_vars()
    add_template_vars(pairs, vars_file)


def reset_template_vars() -> None:
    _FROM_FILES.clear()
    _FROM_PAIRS.clear()
    TEMPLATE_VARS.set(None)


def _read(vars_file: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        loaded = YAML(typ="safe").load(vars_file.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as error:
        raise ConfigError(f"{vars_file}: cannot read variables: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{vars_file}: expected a mapping of variable names to values")
    return loaded


def _scalar(value: str) -> Any:
    """``3`` is a number and ``true`` a boolean, as they would be in YAML."""
    from ruamel.yaml import YAML

    try:
        parsed = YAML(typ="safe").load(value)
    except Exception:
        return value
    return parsed if isinstance(parsed, int | float | bool) else value
