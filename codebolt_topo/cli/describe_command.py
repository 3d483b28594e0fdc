"""``codebolt describe NODE``: one node's page (see :mod:`codebolt_topo.engine.describe`)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg, NodeArg, ShowSensitive
from codebolt_topo.cli.output import print_json, use_json

if TYPE_CHECKING:
    from codebolt_topo.engine.describe import NodeDescription

__all__ = ["describe", "render_description"]

_EVENTS_SHOWN = 15


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _first(text: str) -> str:
    """A message's first line (a start error quotes the node's log below it)."""
    lines = text.splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), default=str)


def render_description(found: NodeDescription) -> str:
    """kubectl-describe-like text: aligned fields, then indented sections."""
    lines: list[str] = []

    def field(label: str, value: Any) -> None:
        lines.append(f"{label + ':':<18} {value}")

    field("Name", found.name)
    field("Topology", found.topology)
    field("Provider", found.provider)
    if found.lifecycle is None:
        field("Lifecycle", "not applied (not in the state)")
    else:
        seen = (
            "alive"
            if found.alive
            else f"not alive: {found.observed}"
            if found.alive is not None
            else ""
        )
        field("Lifecycle", f"{found.lifecycle} ({seen})" if seen else found.lifecycle)
        field("Endpoint", found.url or "-")
        field("Handle", ", ".join(f"{k}={_value(v)}" for k, v in found.handle.items()) or "-")
        field("Generation", found.generation)
        if "peers" in found.wiring:
            field("Sends work to", ", ".join(found.wiring["peers"]) or "-")
        if "inbound" in found.wiring:
            field("Accepts work from", ", ".join(found.wiring["inbound"]) or "-")
        if "plugins" in found.wiring:
            field("Plugins", ", ".join(found.wiring["plugins"]) or "-")
    if not found.in_file:
        field("In the file", "no: the next apply removes it")
    if found.last_start_error:
        field("Last start error", found.last_start_error.splitlines()[0])
        lines.extend(f"{'':18} {more}" for more in found.last_start_error.splitlines()[1:])
    lines.append("Settings:")
    lines.extend(f"  {key}: {_value(value)}" for key, value in found.settings.items())
    if not found.settings:
        lines.append("  (not in the topology file)")
    lines.append("Capabilities:")
    lines.append(f"  declared: {', '.join(found.declared) or '-'}")
    lines.append(f"  offered:  {', '.join(found.offered) or '-'}")
    lines.append(f"  detected: {', '.join(found.detected) or '-'}")
    if found.transitions:
        lines.append("Transitions:")
        lines.extend(
            f"  {_when(t.at)}  {t.state:<9} {_first(t.reason)}".rstrip() for t in found.transitions
        )
    if found.events:
        shown = found.events[-_EVENTS_SHOWN:]
        more = len(found.events) - len(shown)
        lines.append(f"Events{f' (last {len(shown)} of {len(found.events)})' if more else ''}:")
        lines.extend(f"  {_when(e.at)}  {e.kind:<16} {_first(e.message)}".rstrip() for e in shown)
    if found.info is not None:
        info = found.info
        lines.append("Node info:")
        lines.append(
            f"  version {info.get('version')}, pid {info.get('pid')}, gateway "
            f"{info.get('gateway')}, generation {info.get('generation')}"
        )
        lines.append(f"  jobs: {_value(info.get('job_states', {}))}")
    elif found.info_error:
        lines.append(f"Node info: not answering ({found.info_error})")
    if found.jobs:
        lines.append("Jobs:")
        for job in found.jobs:
            lines.append(
                f"  {job.id}  {job.state:<9} pid {job.pid}  {job.age:.0f} s  "
                f"out {job.stdout} B  err {job.stderr} B"
            )
    return "\n".join(lines)


def describe(
    node: NodeArg,
    file: FileArg = DEFAULT_FILE,
    as_json: AsJson = False,
    show_sensitive: ShowSensitive = False,
) -> None:
    """Everything about one node: settings, record, capabilities, transitions with their
    reasons (the last start error too), and its running jobs."""
    use_json(as_json)
    from codebolt_topo.engine.describe import describe_node

    found = describe_node(file, node, show_sensitive=show_sensitive)
    if as_json:
        print_json(found.as_json())
    else:
        print(render_description(found))
