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

from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.runner import Engine
from codebolt_topo.errors import ConfigError
from codebolt_topo.plan.validate import validate_file

__all__ = ["render_image"]

_FILL = {
    "RUNNING": "#b7e4c7", "STARTING": "#ffe8a3", "STOPPING": "#ffe8a3", "FAILED": "#f4a6a6",
    "not applied": "#e9ecef",
}


def render_image(path: Path, fmt: str, output: Path | None) -> Path:
    """Write the picture; returns where it went."""
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError("rendering svg/png needs Graphviz's dot (apt-get install graphviz); "
                          "--format dot prints the graph for any other renderer")
    validated = validate_file(path)
    state_file = state_file_for(path, validated.topology.name)
    state = state_file.load()
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
            "label": f"{name}\\n{spec.provider} · {shown}", "style": "filled,rounded",
            "shape": "box", "fillcolor": _FILL.get(shown, "#ffffff"), "fontname": "Helvetica",
        }
    target = output or path.with_name(f"{validated.topology.name}.{fmt}")
    result = subprocess.run([dot, f"-T{fmt}", "-o", str(target)], check=False,
                            input=validated.graph.to_dot(attributes).encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise ConfigError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return target
