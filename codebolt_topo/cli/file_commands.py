"""Commands about the file rather than the running nodes: ``init``, ``validate``, ``graph``,
and ``providers`` (what the file may name)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg
from codebolt_topo.cli.output import print_json, use_json

__all__ = ["GraphFormat", "graph", "init", "providers", "validate"]


def init(
    shape: Annotated[
        str, typer.Option("--shape", help="linear, fan-out, tree, mesh or hub.", metavar="SHAPE")
    ] = "linear",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Topology name (default: the folder's).", metavar="NAME"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing topology.yaml.")
    ] = False,
) -> None:
    """Write a working topology.yaml for one of the seed shapes into this folder, its schema
    for editors beside it, and a .gitignore entry keeping the state (tokens) out of git."""
    import re

    from codebolt_topo.scaffold import IGNORED, SCHEMA_FILE, scaffold

    default = re.sub(r"[^a-z0-9_-]+", "-", Path.cwd().name.lower()).strip("-_") or "demo"
    target = scaffold(Path.cwd(), shape, name or default[:63], force=force)
    print(
        f"Wrote {target.name} ({shape}) and {SCHEMA_FILE}; .gitignore ignores {IGNORED}. "
        "Next: codebolt plan, then codebolt apply."
    )


def validate(file: FileArg = DEFAULT_FILE, as_json: AsJson = False) -> None:
    """Check a topology file: schema, edges, shape, ports. Reports every problem at once."""
    use_json(as_json)
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(file)
    topology = validated.topology
    if as_json:
        print_json(
            {
                "ok": True,
                "file": str(file),
                "topology": topology.name,
                "nodes": len(topology.nodes),
                "edges": len(validated.edges),
                "shape": topology.shape.value if topology.shape else None,
            }
        )
        return
    shape = f", shape {topology.shape.value}" if topology.shape else ""
    print(f"{file}: valid ({len(topology.nodes)} nodes, {len(validated.edges)} edges{shape})")


def providers(as_json: AsJson = False) -> None:
    """Installed providers: category and the capabilities their nodes get."""
    use_json(as_json)
    from codebolt_topo.providers.registry import describe_providers

    rows = describe_providers()
    if as_json:
        print_json(
            [
                {
                    "name": row.name,
                    "category": row.category,
                    "capabilities": list(row.capabilities),
                    "module": row.module,
                }
                for row in rows
            ]
        )
        return
    from rich.table import Table

    from codebolt_topo.cli.tables import print_table

    table = Table(title="providers")
    for column in ("name", "category", "capabilities", "module"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.category, ", ".join(row.capabilities) or "-", row.module)
    print_table(table)


class GraphFormat(StrEnum):
    ascii = "ascii"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"
    svg = "svg"
    png = "png"


def graph(
    file: FileArg = DEFAULT_FILE,
    fmt: Annotated[
        GraphFormat, typer.Option("--format", help="Output format.", metavar="FORMAT")
    ] = GraphFormat.ascii,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write here ('-': stdout). Default: text formats "
            "print, svg/png go to NAME.FORMAT beside the file.",
            metavar="OUT",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Draw the topology: text formats print, svg/png write a picture with node states coloured."""
    if use_json(as_json):
        fmt = GraphFormat.json
    elif fmt is GraphFormat.json:
        use_json(True)
    if fmt in (GraphFormat.svg, GraphFormat.png):
        from codebolt_topo.cli.graph_image import image_bytes, render_image

        if output == Path("-"):
            sys.stdout.buffer.write(image_bytes(file, fmt.value))
            sys.stdout.buffer.flush()
            return
        print(f"Wrote {render_image(file, fmt.value, output)}")
        return
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(file)
    topology_graph = validated.graph
    if fmt is GraphFormat.json:
        import json

        text = json.dumps(
            {
                "topology": validated.topology.name,
                "nodes": [
                    {"name": name, "provider": spec.provider}
                    for name, spec in validated.topology.nodes.items()
                ],
                "edges": [
                    {"from": source, "to": target} for source, target in topology_graph.edges()
                ],
                "entries": topology_graph.entries(),
            },
            indent=2,
        )
    else:
        render = {
            "mermaid": topology_graph.to_mermaid,
            "dot": topology_graph.to_dot,
            "ascii": topology_graph.to_ascii,
        }[fmt.value]
        text = render().rstrip("\n")  # the renderers end in a newline: no blank line after
    if output is None or output == Path("-"):
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        print(f"Wrote {output}", file=sys.stderr)
