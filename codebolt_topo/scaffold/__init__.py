"""``codebolt init``: a working topology.yaml for each seed shape, ready to apply.

The files are written from the examples' own shapes so a new user starts from something that
runs as is: ``codebolt init --shape tree && codebolt apply --auto-approve``.

Beside it go the files a clone must keep, and none it must not: ``topology.schema.json`` (the
file's first line points editors at it; it is committed with the topology, so a clone completes
and validates too), and a ``.gitignore`` entry for ``.codebolt/``, where the state with every
node's admin token will live (added to an existing ``.gitignore``, never replacing it).
"""

from __future__ import annotations

from pathlib import Path

from codebolt_topo.errors import ConfigError

__all__ = ["IGNORED", "SCHEMA_FILE", "SHAPES", "ignore_state_dir", "scaffold"]

SCHEMA_FILE = "topology.schema.json"
IGNORED = ".codebolt/"
_HEADER = f"# yaml-language-server: $schema={SCHEMA_FILE}\n"

SHAPES: dict[str, tuple[str, str, str]] = {
    # shape: (what it shows, nodes, edges)
    "linear": (
        "A chain: work entered at a is forwarded hop by hop to d.",
        "  a: {}\n  b: {}\n  c: {}\n  d: {}\n",
        "  - linear: [a, b, c, d]\n",
    ),
    "fan-out": (
        "One coordinator, three workers.",
        "  a: {}\n  b: {}\n  c: {}\n  d: {}\n",
        "  - fan-out: {root: a, leaves: [b, c, d]}\n",
    ),
    "tree": (
        "A -> B -> [D, E] and A -> C -> [F, G].",
        "".join(f"  {n}: {{}}\n" for n in "abcdefg"),
        "  - tree: {a: {b: [d, e], c: [f, g]}}\n",
    ),
    "mesh": (
        "Peers that can all send work to one another.",
        "  a: {}\n  b: {}\n  c: {}\n",
        "  - mesh: [a, b, c]\n",
    ),
    "hub": (
        "[b, c, d] -> a -> [e, f]: an orchestrator between developers and workers.",
        "".join(f"  {n}: {{}}\n" for n in "abcdef"),
        "  - hub: {hub: a, inbound: [b, c, d], outbound: [e, f]}\n",
    ),
}


def scaffold(directory: Path, shape: str, name: str, *, force: bool = False) -> Path:
    """Write ``directory/topology.yaml`` for ``shape``; refuses to overwrite unless ``force``."""
    if shape not in SHAPES:
        raise ConfigError(f"unknown shape {shape!r} (choose from {', '.join(SHAPES)})")
    target = directory / "topology.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists (use --force to overwrite)")
    about, nodes, edges = SHAPES[shape]
    text = (
        f"{_HEADER}# {about}\nversion: 1\nname: {name}\nshape: {shape}\n"
        f"nodes:\n{nodes}edges:\n{edges}"
    )
    from codebolt_topo.model.schema import render_schema

    (directory / SCHEMA_FILE).write_text(render_schema())
    ignore_state_dir(directory)
    target.write_text(text)
    return target


def ignore_state_dir(directory: Path) -> Path:
    """Make ``directory/.gitignore`` ignore the state directory (appending to it if needed)."""
    path = directory / ".gitignore"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    entries = {line.strip() for line in current.splitlines()}
    if not entries & {IGNORED, IGNORED.rstrip("/"), f"/{IGNORED}", f"/{IGNORED.rstrip('/')}"}:
        separator = "" if not current or current.endswith("\n") else "\n"
        path.write_text(
            f"{current}{separator}# codebolt state: admin tokens, logs, workspaces\n{IGNORED}\n",
            encoding="utf-8",
        )
    return path
