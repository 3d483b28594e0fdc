"""Write ``schemas/topology.schema.json`` from the pydantic models (``--check``: fail if stale).

The JSON schema is what editors (yaml-language-server) use to complete and check
``topology.yaml`` as it is typed. Generating it from :class:`Topology` keeps one source of truth;
``--check`` (run by the test suite) catches a model change committed without its schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codebolt_topo.model.topology import Topology

__all__ = ["SCHEMA_PATH", "build_schema", "main", "render_schema"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "topology.schema.json"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = render_schema()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python scripts/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
