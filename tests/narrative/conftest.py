"""Fixtures for the Narrative Engine tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codebolt_topo.narrative.store import NarrativeStore

OpenStore = Callable[[str], NarrativeStore]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """Open a store named *env* with its own workspace and state directory under tmp_path."""
    opened: list[NarrativeStore] = []

    def make(env: str) -> NarrativeStore:
        workspace = tmp_path / env / "ws"
        workspace.mkdir(parents=True, exist_ok=True)
        store = NarrativeStore.open(tmp_path / env / "state", workspace, env)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
