"""``codebolt graph --format svg|png``: a picture of the topology with node states coloured.

Graphviz (``dot``, from Debian's ``graphviz`` package) lays the graph out; states come from the
state file and the providers' view, the same observation ``status`` makes (no heartbeats, so a
picture costs no round trips).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.runner import Engine
from codebolt_topo.errors import ConfigError
from codebolt_topo.plan.validate import validate_file

__all__ = ["image_bytes", "render_image"]

_FILL = {
    "RUNNING": "#b7e4c7",
    "STARTING": "#ffe8a3",
    "STOPPING": "#ffe8a3",
    "FAILED": "#f4a6a6",
    "not applied": "#e9ecef",
}


def _dot_source(path: Path) -> tuple[str, str]:
    """The topology's name and its dot source with every node coloured by its state."""
    validated = validate_file(path)
    state_file = backend_for(path, validated.topology)
    state = state_file.load(sealed_ok=True)
    observed = asyncio.run(Engine(state_file).refresh(state))
    attributes = {}
    for name, spec in validated.topology.nodes.items():
        node = state.nodes.get(name)
        if node is None:
            shown = "not applied"
        elif not observed[name].alive:
            shown = "FAILED"
        else:
            shown = node.lifecycle.value
        attributes[name] = {
            "label": f"{name}\\n{spec.provider} · {shown}",
            "style": "filled,rounded",
            "shape": "box",
            "fillcolor": _FILL.get(shown, "#ffffff"),
            "fontname": "Helvetica",
        }
    return validated.topology.name, validated.graph.to_dot(attributes)


def _require_dot() -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "rendering svg/png needs Graphviz's dot (apt-get install graphviz); "
            "--format dot prints the graph for any other renderer"
        )
    return dot


def _dot(fmt: str, source: str, target: Path | None) -> bytes:
    """Run dot: into ``target``, or (None) to its stdout, returned (``-o`` always takes a file
    name: ``-o -`` is not "stdout" to dot)."""
    dot = _require_dot()
    argv = [dot, f"-T{fmt}"] if target is None else [dot, f"-T{fmt}", "-o", str(target)]
    result = subprocess.run(argv, check=False, input=source.encode(), capture_output=True)
    if result.returncode != 0:
        raise ConfigError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def render_image(path: Path, fmt: str, output: Path | None) -> Path:
    """Write the picture; returns where it went (default NAME.FORMAT beside the file)."""
    _require_dot()  # before any work: say what to install
    name, source = _dot_source(path)
    target = output or path.with_name(f"{name}.{fmt}")
    _dot(fmt, source, target)
    return target


def image_bytes(path: Path, fmt: str) -> bytes:
    """The picture itself (for ``graph -o -``)."""
    _require_dot()
    return _dot(fmt, _dot_source(path)[1], None)
