"""Docker tests: a real engine, the node image (see ``tests/node_image_plugin.py``), and
nothing left behind.

Every test gets ``docker_guard``: after it, passed or failed, anything labelled by a test topology
is removed, and a test that left something behind fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def docker_guard(node_image: str, tmp_path: Path) -> Iterator[None]:
    """Fail a test that leaves labelled containers, networks or volumes; remove them anyway.

    Only what the test's own topologies created counts (their state directories lie under its
    ``tmp_path``), so another run sharing the engine is neither blamed nor cleaned up."""
    from docker_helpers import labelled_leftovers, remove_leftovers

    yield
    left = labelled_leftovers(tmp_path)
    remove_leftovers(tmp_path)
    assert left == [], f"left behind: {left}"
