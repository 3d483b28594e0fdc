"""``--var`` and ``--vars-file``: the variables topology templates are rendered with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.template import TEMPLATE_VARS

__all__ = ["set_template_vars"]


def set_template_vars(pairs: list[str], vars_file: Path | None) -> None:
    """Collect variables (the file first, ``--var`` overriding) for this command."""
    variables: dict[str, Any] = {}
    if vars_file is not None:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            loaded = YAML(typ="safe").load(vars_file.read_text(encoding="utf-8"))
        except (OSError, YAMLError) as error:
            raise ConfigError(f"{vars_file}: cannot read variables: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{vars_file}: expected a mapping of variable names to values")
        variables.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--var {pair!r}: expected NAME=VALUE with NAME a valid identifier")
        variables[name] = _scalar(value)
    TEMPLATE_VARS.set(variables)


def _scalar(value: str) -> Any:
    """``3`` is a number and ``true`` a boolean, as they would be in YAML."""
    from ruamel.yaml import YAML

    try:
        parsed = YAML(typ="safe").load(value)
    except Exception:
        return value
    return parsed if isinstance(parsed, int | float | bool) else value
