"""``codebolt describe NODE``: everything known about one node, in one place.

``status`` is a table of every node; this is the page for one, in the spirit of ``kubectl
describe``: its settings in the file, what the state recorded (handle, endpoint, generation,
wiring), the capabilities it declares, its provider offers and its daemon detected, its
lifecycle transitions with the reasons the engine journaled (the last start error included),
what the provider sees now, and, when it answers, the node's own ``info`` with its jobs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.events import Event, EventJournal
from codebolt_topo.engine.jobs import JobInfo, node_info
from codebolt_topo.engine.joined_nodes import dials_out_only, shown_handle
from codebolt_topo.engine.runner import Engine
from codebolt_topo.engine.sensitive import mask_settings
from codebolt_topo.errors import ConfigError, TopoError
from codebolt_topo.model.state import Lifecycle
from codebolt_topo.model.state import Transition as Moved

__all__ = ["NodeDescription", "Transition", "describe_node"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A lifecycle move from the state's history, with the journaled reason when one is known."""

    at: float
    state: str
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "state": self.state, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """One node: settings, record, capabilities, history, observation and live info."""

    topology: str
    name: str
    provider: str
    in_file: bool
    settings: dict[str, Any]
    lifecycle: str | None = None
    url: str | None = None
    handle: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    generation: int = 0
    wiring: dict[str, Any] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)
    offered: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    last_start_error: str | None = None
    alive: bool | None = None
    observed: str = ""
    info: dict[str, Any] | None = None
    info_error: str = ""
    jobs: list[JobInfo] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "topology": self.topology,
            "name": self.name,
            "provider": self.provider,
            "in_file": self.in_file,
            "settings": self.settings,
            "lifecycle": self.lifecycle,
            "url": self.url,
            "handle": self.handle,
            "launch": self.launch,
            "generation": self.generation,
            "wiring": self.wiring,
            "capabilities": {
                "declared": self.declared,
                "offered": self.offered,
                "detected": self.detected,
            },
            "transitions": [t.as_json() for t in self.transitions],
            "events": [e.as_json() for e in self.events],
            "last_start_error": self.last_start_error,
            "alive": self.alive,
            "observed": self.observed,
            "info": self.info,
            "info_error": self.info_error,
            "jobs": [job.as_json() for job in self.jobs],
        }


def _reasons(history: list[Moved], events: list[Event]) -> list[Transition]:
    """Each recorded transition with its reason: the one the state recorded, else (a state
    written before transitions had reasons) the journal event that explains it, the nearest
    event of a matching kind within a few seconds of it."""
    kinds = {
        "STARTING": ("starting",),
        "RUNNING": ("running",),
        "FAILED": ("start-failed", "failed"),
        "STOPPING": ("stopping",),
        "STOPPED": ("stopped",),
    }
    paired = []
    for moved in history:
        at, state = moved.at, moved.state.value
        if moved.reason is not None:
            paired.append(Transition(at, state, moved.reason))
            continue
        wanted = kinds.get(state, ())
        near = [e for e in events if e.kind in wanted and abs(e.at - at) <= 5.0]
        best = min(near, key=lambda e: abs(e.at - at), default=None)
        paired.append(Transition(at, state, best.message if best else ""))
    return paired


def describe_node(
    path: Path, name: str, *, show_sensitive: bool = False, timeout: float = 2.0
) -> NodeDescription:
    """Describe ``name``, a node of the file or of the state (one being removed)."""
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(path)
    topology = validated.topology
    state_file = backend_for(path, topology)
    state = state_file.load(sealed_ok=True)
    spec = topology.nodes.get(name)
    node = state.nodes.get(name)
    if spec is None and node is None:
        known = ", ".join(sorted({*topology.nodes, *state.nodes}))
        raise ConfigError(f"no node {name!r} in topology {topology.name!r} (nodes: {known})")
    engine = Engine(state_file)
    provider_name = spec.provider if spec is not None else node.provider if node else "local"
    settings: dict[str, Any] = {}
    offered: list[str] = []
    if spec is not None:
        settings = mask_settings(
            spec.model_dump(mode="json", exclude_defaults=True), show=show_sensitive
        )
        settings.setdefault("provider", spec.provider)
        try:
            offered = sorted(engine.provider(spec.provider, state).offers(spec)[0])
        except TopoError:
            offered = []
    events = EventJournal(state_file.runtime_dir).read(name)
    start_errors = [e for e in events if e.kind == "start-failed"]
    described = NodeDescription(
        topology=topology.name,
        name=name,
        provider=provider_name,
        in_file=spec is not None,
        settings=settings,
        declared=sorted(spec.capabilities) if spec is not None else [],
        offered=offered,
        events=events,
        last_start_error=start_errors[-1].message if start_errors else None,
    )
    if node is None:
        return described
    recorded = node

    async def live() -> tuple[bool, str, dict[str, Any] | None, str]:
        alone = state.model_copy(update={"nodes": {name: recorded}})  # inspect this one only
        seen = (await engine.refresh(alone))[name]
        if recorded.lifecycle is not Lifecycle.RUNNING or not seen.alive:
            return seen.alive, seen.reason, None, ""
        if dials_out_only(recorded):
            far = "nothing here reaches it; 'codebolt status' shows what its neighbours see"
            return seen.alive, seen.reason, None, far
        try:
            info = await node_info(recorded, detail=True, timeout=timeout)
        except (TopoError, OSError) as error:
            return seen.alive, seen.reason, None, str(error) or type(error).__name__
        return seen.alive, seen.reason, info, ""

    alive, observed, info, info_error = asyncio.run(live())
    jobs = [JobInfo.from_info(name, item) for item in (info or {}).pop("job_list", [])]
    if info is not None:
        info.pop("clock", None)  # the replay guard's clock: nothing for a reader
    return replace(
        described,
        provider=node.provider,
        lifecycle=node.lifecycle.value,
        url=node.url,
        handle=shown_handle(node.handle),
        launch=mask_settings(node.launch, show=show_sensitive),
        generation=node.generation,
        wiring={
            key: node.wiring[key] for key in ("peers", "inbound", "plugins") if key in node.wiring
        },
        detected=list(node.detected),
        transitions=_reasons(node.history, events),
        alive=alive,
        observed=observed,
        info=info,
        info_error=info_error,
        jobs=jobs,
    )
