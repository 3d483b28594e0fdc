"""Pydantic errors, rewritten as :class:`ValidationIssue` a person can act on.

pydantic reports ``('edges', 2, 'fan-out', 'fan-out', 'leaves', 0)`` and "String should match
pattern '^[a-z0-9]…'". Users wrote YAML, not Python: they need the dotted path they can find in
their file, the line and column, and a sentence that says what to write instead. This module is
the one place that knows pydantic's error vocabulary.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from codebolt_topo.errors import ValidationIssue
from codebolt_topo.model.nodes import node_model, settings_fields
from codebolt_topo.model.source import FieldPath, SourceMap, format_path
from codebolt_topo.model.topology import (
    EDGE_SHORTHAND,
    NODE_NAME_PATTERN,
    SHAPE_KEYS,
    EdgeSpec,
    FanOutShape,
    FanOutSpec,
    HubShape,
    HubSpec,
    LinearShape,
    MeshShape,
    Topology,
    TreeShape,
)

__all__ = ["did_you_mean", "issues_from_error"]

_EDGE_MODELS: dict[str, type[BaseModel]] = {
    "edge": EdgeSpec,
    "linear": LinearShape,
    "fan-out": FanOutShape,
    "tree": TreeShape,
    "mesh": MeshShape,
    "hub": HubShape,
}
_NAME_RULE = (
    "use lowercase letters, digits, '-' and '_', starting with a letter or digit, "
    "at most 63 characters"
)
_TYPE_WORDS = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def did_you_mean(word: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def issues_from_error(error: ValidationError, sources: SourceMap) -> list[ValidationIssue]:
    """One issue per pydantic error, located through ``sources``; exact duplicates dropped."""
    issues: list[ValidationIssue] = []
    for detail in error.errors(include_url=False):
        raw = tuple(detail["loc"])
        at_key = raw[-1:] == ("[key]",)
        loc = raw[:-1] if at_key else raw
        loc = _strip_tags(loc)
        if detail["type"] == "missing":
            field_path: FieldPath = loc[:-1]
        else:
            at_key = at_key or detail["type"] == "extra_forbidden"
            field_path = loc
        issue = ValidationIssue(
            sources.locate(field_path, key=at_key),
            format_path(field_path),
            _message(detail, raw, field_path, at_key),
        )
        if issue not in issues:
            issues.append(issue)
    return issues


def _strip_tags(loc: tuple[str | int, ...]) -> FieldPath:
    """Drop the union tags pydantic puts in locations: they name no key the user wrote."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "edges" and isinstance(parts[1], int):
        del parts[2]  # the edge-item discriminator's tag always sits right after the index
    return tuple(
        part
        for part in parts
        if not (isinstance(part, str) and part.startswith("<") and part.endswith(">"))
    )


def _message(detail: ErrorDetails, raw: tuple[Any, ...], path: FieldPath, at_key: bool) -> str:
    kind, value = detail["type"], detail["input"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind == "extra_forbidden":
        return _unknown_field(str(raw[-1]), raw[:-1])
    if kind == "missing":
        return f"missing required field {raw[-1]!r}"
    if kind == "string_pattern_mismatch":
        return _pattern_message(str(ctx.get("pattern")), value, path, at_key)
    if kind == "too_short" and path == ("nodes",):
        return "at least one node is required"
    if kind == "too_short":
        noun = (
            "node" if path and path[-1] in {"nodes", "linear", "mesh", "leaves", "tree"} else "item"
        )
        minimum = ctx.get("min_length")
        return (
            f"needs at least {minimum} {noun}{'s' if minimum != 1 else ''}, got "
            f"{ctx.get('actual_length')}"
        )
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {value!r}"
    if kind == "enum":
        options = [
            option.strip(" '")
            for option in str(ctx.get("expected")).replace(" or ", ",").split(",")
            if option.strip(" '")
        ]
        hint = did_you_mean(str(value), options) or f" (expected one of: {', '.join(options)})"
        return f"unknown {path[-1] if path else 'value'} {value!r}{hint}"
    if kind == "edge_item":
        return _edge_item_message(value, detail["msg"])
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
    if kind in {"tree_child", "plugin_setting"}:
        return f"{detail['msg']}, got {_describe(value)}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"{_lower_first(detail['msg']).replace('input should be', 'must be')}, got {value!r}"
    message = detail["msg"].removeprefix("Value error, ")
    return _lower_first(message)


def _unknown_field(name: str, parent: tuple[Any, ...]) -> str:
    model = _model_at(parent)
    fields = _field_names(model) if model else []
    if name in SHAPE_KEYS and len(parent) == 3 and parent[0] == "edges":
        return f"one shape per edge item: move {name!r} into an item of its own"
    hint = did_you_mean(name, fields) or (
        f" (expected one of: {', '.join(fields)})" if fields else ""
    )
    return f"unknown field {name!r}{hint}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields are allowed at a raw pydantic location (tags still in it)."""
    if not loc:
        return Topology
    if loc[0] == "nodes" and len(loc) == 2:
        return node_model()
    if loc[0] == "nodes" and len(loc) > 2 and loc[2] in settings_fields():
        # Inside a provider's settings (``ssh:``, ``toy:``): its own models, at any depth.
        owner = settings_fields()[str(loc[2])]
        return _model_along(owner.fields()[str(loc[2])].annotation, loc[3:])
    if loc[0] == "edges" and len(loc) == 3:
        return _EDGE_MODELS.get(str(loc[2]))
    if loc[0] == "edges" and len(loc) == 4 and loc[2] == loc[3]:
        specs: dict[str, type[BaseModel]] = {"fan-out": FanOutSpec, "hub": HubSpec}
        return specs.get(str(loc[2]))
    return None


def _model_along(annotation: Any, path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model reached from a field's ``annotation`` through ``path`` (field names, list
    indices; union tags skipped), or None where the path leaves the models."""
    for part in path:
        if isinstance(part, str) and part.startswith("<"):
            continue  # a union's tag: the model is picked by _model_in
        if isinstance(part, int):
            annotation = _item_of(annotation)
            continue
        model = _model_in(annotation)
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
    return _model_in(annotation)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The one model class ``annotation`` holds (through Annotated and unions), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        models = {model for arg in get_args(annotation) if (model := _model_in(arg))}
        return models.pop() if len(models) == 1 else None
    return None


def _item_of(annotation: Any) -> Any:
    """The item type of a list annotation (through Annotated and Optional), else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _item_of(get_args(annotation)[0])
    if origin is list:
        return get_args(annotation)[0]
    if origin in (Union, types.UnionType):
        items = [item for arg in get_args(annotation) if (item := _item_of(arg)) is not None]
        return items[0] if len(items) == 1 else None
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _pattern_message(pattern: str, value: Any, path: FieldPath, at_key: bool) -> str:
    if pattern == EDGE_SHORTHAND.pattern:
        return f"expected 'a -> b' or 'a <-> b', got {value!r}"
    if pattern == NODE_NAME_PATTERN:
        what = "topology name" if path == ("name",) else "node name"
        return f"invalid {what} {value!r}: {_NAME_RULE}"
    if path[:1] == ("nodes",) and "capabilities" in path:
        return (
            f"invalid capability {value!r}: use lowercase letters, digits and '_.:-', "
            "starting with a letter or digit"
        )
    return f"{value!r} does not match the pattern {pattern}"


def _edge_item_message(value: Any, message: str) -> str:
    if isinstance(value, dict):
        keys = [str(key) for key in value]
        for key in keys:
            hint = did_you_mean(key, [*SHAPE_KEYS, "from", "to"])
            if hint:
                return f"unknown edge form {key!r}{hint}"
        shown = ", ".join(repr(key) for key in keys) or "none"
        return f"{message}; got a mapping with keys {shown}"
    return f"{message}; got {_describe(value)}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"{type(value).__name__} {value!r}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
