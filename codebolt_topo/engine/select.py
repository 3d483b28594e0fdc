"""Route by capability: which nodes a ``--requires`` selector names.

The orchestrator side resolves a selector into node names, because it knows every node's
declared and provider-offered capabilities, those its daemon detected where it runs (recorded in
the state when the node is configured), and the graph; the request then travels the edges like
any other. The nearest matching node wins (fewest hops from the entry); among equally near
ones, the least loaded (fewest running jobs, asked live); then the first declared.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from codebolt_topo.capabilities import missing
from codebolt_topo.client import NodeClient
from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.runner import Engine
from codebolt_topo.errors import ConfigError, StateError, TopoError
from codebolt_topo.model.state import NodeState
from codebolt_topo.plan.validate import validate_file

__all__ = ["select_targets"]


async def _load(node: NodeState) -> int:
    """Running jobs on ``node``; unknown load counts as busy so known-idle nodes win."""
    if node.url is None:
        return 1 << 30
    with contextlib.suppress(TopoError, OSError, TimeoutError):
        async with NodeClient.admin(node) as client:
            info = await asyncio.wait_for(client.info(), 2.0)
            return int(info.get("jobs", 0))
    return 1 << 30


async def select_targets(
    path: Path, requires: list[str], *, from_node: str | None = None, every: bool = False
) -> tuple[str, list[str]]:
    """The entry node and the node(s) that satisfy every capability in ``requires``.

    With ``every`` all matching nodes reachable from the entry are returned (fan-out by
    selector); otherwise the nearest one. No match is an error that says what each lacks.
    """
    validated = validate_file(path)
    state_file = backend_for(path, validated.topology)
    state = state_file.load()
    if not state.nodes:
        raise StateError(f"topology {validated.topology.name!r} is not applied")
    graph = validated.graph
    entry = from_node or graph.entries()[0]
    engine = Engine(state_file)
    hops = {name: graph.hops(entry, name) for name in validated.topology.nodes}
    candidates = sorted(
        (n for n, h in hops.items() if h is not None),
        key=lambda n: (hops[n], list(validated.topology.nodes).index(n)),
    )
    lacking: dict[str, list[str]] = {}
    for name in candidates:
        spec = validated.topology.nodes[name]
        offered, _ = engine.provider(spec.provider, state).offers(spec)
        running = state.nodes.get(name)
        detected = running.detected if running is not None else []
        lacking[name] = missing(requires, offered | frozenset(detected))
    matching = [n for n in candidates if not lacking[n]]
    if not matching:
        detail = "; ".join(f"{n} lacks {', '.join(lacking[n])}" for n in candidates)
        raise ConfigError(
            f"no node reachable from {entry!r} offers {', '.join(requires)}: {detail}"
        )
    if every:
        return entry, matching
    nearest = [n for n in matching if hops[n] == hops[matching[0]]]
    if len(nearest) > 1:
        loads = await asyncio.gather(*(_load(state.nodes[n]) for n in nearest if n in state.nodes))
        by_load = dict(zip([n for n in nearest if n in state.nodes], loads, strict=True))
        nearest.sort(key=lambda n: by_load.get(n, 1 << 30))
    return entry, nearest[:1]
