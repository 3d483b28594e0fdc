"""``codebolt state migrate --to file|postgres``: move a state to another backend.

Like Terraform's ``init -migrate-state``: every kept version of the current lineage is copied,
oldest first, under the locks of both backends, so nobody writes either side meanwhile. Tokens
travel sealed, as stored: migrating needs no key. The target must not hold a state already
(two histories are never merged). A file copy left behind is renamed out of the way, so that a
command forgetting ``backend:`` finds no stale state to act on; a database copy left behind is
left for the team (others may still point at it) and the report says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.engine.backends import KINDS, backend_for, open_backend
from codebolt_topo.engine.statefile import StateBackend, StateFile
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import State
from codebolt_topo.model.topology import Topology

__all__ = ["MigrationReport", "migrate_state"]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    name: str
    source: str
    target: str
    versions: int
    serial: int
    retired: Path | None
    hint: str


def _history(source: StateBackend) -> list[State]:
    """The versions of the current lineage, oldest first (the current state alone when the
    source keeps no history)."""
    current = source.load(sealed_ok=True)
    try:
        serials = [v.serial for v in source.versions() if v.lineage == current.lineage]
    except StateError:
        return [current]
    return [source.load_version(serial, sealed_ok=True) for serial in sorted(set(serials))]


def migrate_state(
    path: Path, topology: Topology, to: str, *, lock_timeout: float = 0.0
) -> MigrationReport:
    if to not in KINDS:
        raise ConfigError(f"unknown state backend {to!r} (choose one of {', '.join(KINDS)})")
    source = backend_for(path, topology)
    target = open_backend(path, topology.name, topology.backend, kind=to)
    if type(source) is type(target):
        raise ConfigError(f"the state of {topology.name!r} is already in the {to} backend")
    with (
        source.locked("state migrate", timeout=lock_timeout),
        target.locked("state migrate", timeout=lock_timeout),
    ):
        if not source.exists():
            raise StateError(f"nothing to migrate: {source.location} holds no state")
        if target.exists():
            raise StateError(
                f"{target.location} already holds a state of {topology.name!r}: migrate never "
                "merges two histories (remove it there first, or push a copy)"
            )
        history = _history(source)
        for state in history:
            target.push(state)
        retired = None
        if isinstance(source, StateFile):
            retired = source.path.with_name(
                f"{source.path.name}.migrated-{time.strftime('%Y%m%dT%H%M%S')}"
            )
            os.replace(source.path, retired)
    hint = (
        "set backend: {type: postgres} in the topology file (or pass --backend postgres)"
        if to == "postgres"
        else "remove the backend: block from the topology file (or pass --backend file); "
        f"the copy in {source.location} stays for whoever still uses it"
    )
    source.close()
    target.close()
    return MigrationReport(
        topology.name,
        source.location,
        target.location,
        len(history),
        history[-1].serial,
        retired,
        hint,
    )
