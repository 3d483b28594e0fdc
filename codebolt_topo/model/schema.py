"""The JSON schema of topology files, generated from the pydantic models.

Editors (yaml-language-server) use it to complete and check ``topology.yaml`` as it is typed.
``scripts/gen_schema.py`` writes it to ``schemas/``; ``codebolt init`` writes it beside a new
topology file.
"""

from __future__ import annotations

import json
from typing import Any

from codebolt_topo.model.topology import Topology

__all__ = ["SCHEMA_ID", "build_schema", "render_schema"]

SCHEMA_ID = "urn:codebolt-topo:schema:topology:v1"


def build_schema() -> dict[str, Any]:
    """The schema of topology files, as a JSON-ready dict."""
    schema = Topology.model_json_schema(by_alias=True)
    _constrain_property_names(schema)
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
