"""Choosing where a topology's state lives: the ``backend:`` block, or the command line.

Precedence: ``CODEBOLT_BACKEND`` (what ``codebolt --backend file|postgres`` sets, so the
processes it starts agree), then the topology's ``backend:`` block, then the file backend.
Every engine entry point opens its state through :func:`open_backend`, so a topology moved to
PostgreSQL is planned, applied, watched and exec'd against the database by every command alike.

Modules: ``postgres.py`` (the PostgreSQL backend: tables, advisory lock, versions, lease),
``migrate.py`` (``codebolt state migrate``: every version from one backend to another).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.backend import BackendSpec

if TYPE_CHECKING:
    from codebolt_topo.engine.statefile import StateBackend
    from codebolt_topo.model.topology import Topology

__all__ = ["BACKEND_ENV", "KINDS", "backend_for", "open_backend"]

BACKEND_ENV = "CODEBOLT_BACKEND"
KINDS = ("file", "postgres")


def _kind(spec: BackendSpec) -> str:
    chosen = os.environ.get(BACKEND_ENV) or spec.type
    if chosen not in KINDS:
        raise ConfigError(f"unknown state backend {chosen!r} (choose one of {', '.join(KINDS)})")
    return chosen


def open_backend(
    topology_path: Path, name: str, spec: BackendSpec | None = None, *, kind: str | None = None
) -> StateBackend:
    """The state of topology ``name`` defined in ``topology_path``, where ``spec`` (its
    ``backend:`` block) or the command line says it lives; ``kind`` forces one (migrate)."""
    from codebolt_topo.engine.statefile import StateFile, state_dir_for

    spec = spec or BackendSpec()
    chosen = kind or _kind(spec)
    directory = state_dir_for(topology_path)
    if chosen == "file":
        return StateFile(directory, name)
    try:
        from codebolt_topo.engine.backends.postgres import PostgresBackend
    except ImportError:
        raise ConfigError(
            "the postgres state backend needs psycopg, which this install lacks: "
            "pip install 'codebolt-topo[postgres]'"
        ) from None
    return PostgresBackend(directory, name, spec)


def backend_for(topology_path: Path, topology: Topology) -> StateBackend:
    """:func:`open_backend` for a validated topology."""
    return open_backend(topology_path, topology.name, topology.backend)
