"""The JSON schema of topology files, generated from the pydantic models (with the installed
providers' settings).

Editors (yaml-language-server) use it to complete and check ``topology.yaml`` as it is typed.
``scripts/gen_schema.py`` writes it to ``schemas/``; ``codebolt init`` writes it beside a new
topology file.

pydantic's schema is reshaped where an editor would otherwise say less than the loader does:

* ``provider`` names one of the installed providers (an enum), so ``dokcer`` is flagged;
* alternatives that differ by type (a node or nothing, a plugin's switch or settings, a
  duration's number or string) become ``if``/``then`` on the type: with ``anyOf`` a typo'd key
  was only "not valid under any of the given schemas", now it is the key that is unexpected;
* edge items are told apart by their key (``from``/``to`` or a shape's name), as the loader
  tells them apart, so a typo inside one is reported against that form alone.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from codebolt_topo.model.discovery import provider_names
from codebolt_topo.model.nodes import topology_model
from codebolt_topo.model.topology import (
    SHAPE_KEYS,
    EdgeSpec,
    FanOutShape,
    HubShape,
    LinearShape,
    MeshShape,
    TreeShape,
)

__all__ = ["SCHEMA_ID", "build_schema", "render_schema"]

SCHEMA_ID = "urn:codebolt-topo:schema:topology:v1"

#: The definition each shape key of an edge item selects.
_SHAPES: dict[str, type[BaseModel]] = {
    "linear": LinearShape,
    "fan-out": FanOutShape,
    "tree": TreeShape,
    "mesh": MeshShape,
    "hub": HubShape,
}


def build_schema() -> dict[str, Any]:
    """The schema of topology files with the installed providers' settings, as JSON data."""
    schema = topology_model().model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    _constrain_property_names(schema)
    _name_providers(defs)
    _dispatch_edge_items(schema)
    _dispatch_by_type(schema, defs)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "codebolt-topo topology (version 1)"
    return schema


def render_schema() -> str:
    """Deterministic text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _constrain_property_names(node: Any) -> None:
    """pydantic leaves keys that miss a dict's key pattern allowed (``patternProperties`` only);
    adding the pattern to ``propertyNames`` makes editors flag a bad node name too."""
    if isinstance(node, dict):
        patterns = list(node.get("patternProperties", {}))
        names = node.get("propertyNames")
        if len(patterns) == 1 and isinstance(names, dict) and "pattern" not in names:
            names["pattern"] = patterns[0]
        for value in node.values():
            _constrain_property_names(value)
    elif isinstance(node, list):
        for value in node:
            _constrain_property_names(value)


def _name_providers(defs: dict[str, Any]) -> None:
    """``provider:`` of a node, and of a hybrid placement entry, is an installed provider."""
    names = provider_names()
    listed = ", ".join(names)
    node = defs.get("NodeSpec", {}).get("properties", {}).get("provider")
    if node is not None:
        node["enum"] = names
        node["description"] = (
            f"Which provider places this node: one of the installed providers ({listed} when "
            "this schema was generated; codebolt providers lists them)."
        )
    placeable = [name for name in names if name != "hybrid"]
    entry = defs.get("PlacementEntry", {}).get("properties", {}).get("provider")
    if entry is not None:
        entry["enum"] = placeable
    placement = defs.get("NodeSpec", {}).get("properties", {}).get("placement", {})
    for form in placement.get("items", {}).get("oneOf", []):
        if form.get("type") == "string":  # a bare provider name
            form["enum"] = placeable


def _types(schema: Any, defs: dict[str, Any]) -> frozenset[str] | None:
    """The JSON types ``schema`` admits, when it says (itself or the definition it refers to)."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return _types(defs.get(schema["$ref"].rsplit("/", 1)[-1]), defs)
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return frozenset(kind)
    return None


def _one_or_list(kinds: frozenset[str]) -> str | list[str]:
    return next(iter(kinds)) if len(kinds) == 1 else sorted(kinds)


def _dispatch_by_type(node: Any, defs: dict[str, Any]) -> None:
    """Turn every ``anyOf``/``oneOf`` whose alternatives admit disjoint types into a list of
    types and one ``if: {type}`` / ``then: alternative`` per alternative (innermost first)."""
    if isinstance(node, list):
        for value in node:
            _dispatch_by_type(value, defs)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _dispatch_by_type(value, defs)
    for keyword in ("anyOf", "oneOf"):
        alternatives = node.get(keyword)
        if not isinstance(alternatives, list) or "type" in node:
            continue
        kinds = [_types(alternative, defs) for alternative in alternatives]
        known = [kind for kind in kinds if kind is not None]
        if len(known) < len(kinds) or sum(map(len, known)) != len(frozenset().union(*known)):
            continue  # an alternative of unknown type, or two sharing one: leave it
        del node[keyword]
        node["type"] = _one_or_list(frozenset().union(*known))
        branches = [
            {"if": {"type": _one_or_list(kind)}, "then": alternative}
            for kind, alternative in zip(known, alternatives, strict=True)
            if set(alternative) - {"type"}  # ``{"type": "null"}`` needs no branch
        ]
        if branches:
            node["allOf"] = [*node.get("allOf", []), *branches]


def _dispatch_edge_items(schema: dict[str, Any]) -> None:
    """Edge items by form: a string is a shorthand; a mapping is the shape its shape key names,
    else ``{from, to}`` when it has either; a mapping with none of those keys is told which
    keys an edge item has."""
    edges = schema.get("properties", {}).get("edges", {})
    items = edges.get("items", {})
    forms = items.get("oneOf")
    if not isinstance(forms, list):
        return
    shorthand = next(form for form in forms if form.get("type") == "string")
    keys = ["from", "to", *SHAPE_KEYS]

    def ref(model: type) -> dict[str, str]:
        return {"$ref": f"#/$defs/{model.__name__}"}

    def having(names: list[str]) -> dict[str, Any]:
        return {"anyOf": [{"required": [name]} for name in names]}

    shapes = list(SHAPE_KEYS)
    by_key = [
        *({"if": {"required": [key]}, "then": ref(_SHAPES[key])} for key in shapes),
        {
            "if": {**having(["from", "to"]), "not": having(shapes)},
            "then": ref(EdgeSpec),
        },
        {
            "if": {"not": having(keys)},
            "then": {"minProperties": 1, "propertyNames": {"enum": keys}},
        },
    ]
    edges["items"] = {
        "description": "'a -> b', {from: a, to: b}, or one of the shapes linear, fan-out, "
        "tree, mesh, hub.",
        "type": ["object", "string"],
        "allOf": [
            {"if": {"type": "string"}, "then": shorthand},
            {"if": {"type": "object"}, "then": {"allOf": by_key}},
        ],
    }
