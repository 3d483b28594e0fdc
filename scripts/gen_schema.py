"""Write ``schemas/topology.schema.json`` from the pydantic models (``--check``: fail if stale).

The JSON schema is what editors (yaml-language-server) use to complete and check
``topology.yaml`` as it is typed. Generating it from :class:`Topology` keeps one source of truth;
``--check`` (run by the test suite) catches a model change committed without its schema.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebolt_topo.model.schema import SCHEMA_ID, build_schema, render_schema

__all__ = ["SCHEMA_ID", "SCHEMA_PATH", "build_schema", "main", "render_schema"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "topology.schema.json"


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
