"""Markers every test gets from where it lives, and the environment every test runs in.

``core``: the pure core (``model``, ``plan``, ``wire``): no daemon, no socket, no subprocess, so
``pytest -m core`` checks the loader, the planner and the protocol codec alone in seconds.

The exec brokers that ``codebolt exec`` starts (cli/broker.py) and the zygotes that fork local
daemons (providers/local/zygote.py) leave 30 s after their last request in tests instead of 10
minutes: a topology destroyed through the Python API tells no broker.

Tests stop ``codebolt watch``, ``status --watch`` and ``logs -f`` with Ctrl-C (SIGINT). A suite
started in the background by a non-interactive shell (``nohup ... &``) inherits SIGINT ignored,
and every process it starts would too, so those commands could never be interrupted: the
suite's own process takes Python's handler back, and the processes it starts the default.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresServer, running_postgres

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.setdefault("CODEBOLT_BROKER_PERSIST", "30")
os.environ.setdefault("CODEBOLT_ZYGOTE_PERSIST", "30")

_CORE = {"model", "plan", "wire"}
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(item.path).resolve().relative_to(_TESTS)
        if relative.parts and relative.parts[0] in _CORE:
            item.add_marker(pytest.mark.core)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (see tests/postgres_server.py); tests keep
    apart by topology name or schema."""
    with running_postgres() as server:
        yield server
