"""Use-case tests: those that need SSH get cloud-vm's wheelhouse built up front, outside any
test's timeout (docker ones get the node image from ``tests/node_image_plugin.py``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest


def _selected(session: pytest.Session, marker: str) -> bool:
    here = Path(__file__).parent
    return any(
        Path(str(item.path)).is_relative_to(here) and item.get_closest_marker(marker)
        for item in session.items
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if _selected(session, "ssh"):
        # cloud-vm's wheelhouse (cached by source hash), like the image: outside test timeouts.
        from codebolt_topo.errors import ProviderError
        from codebolt_topo.providers.cloud_vm.wheelhouse import wheelhouse

        with contextlib.suppress(ProviderError):
            wheelhouse()
