"""Use-case tests that need Docker reuse the docker tests' machinery (tests/docker).

(Those that need SSH get cloud-vm's wheelhouse built up front, for the same reason.)

The node image is built (or found up to date) once, in ``pytest_collection_finish``, outside any
test's timeout, and only when a docker-marked use-case test was selected. ``node_image`` skips
without an engine (an error under ``CODEBOLT_REQUIRE_DOCKER=1``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

DOCKER_TESTS = Path(__file__).resolve().parents[1] / "docker"
_IMAGE = pytest.StashKey[str]()
_PROBLEM = pytest.StashKey[str]()


def _docker_conftest() -> ModuleType:
    """tests/docker/conftest.py as a plain module (its hooks stay unregistered here)."""
    spec = importlib.util.spec_from_file_location("docker_tests_conftest",
                                                  DOCKER_TESTS / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _selected(session: pytest.Session, marker: str) -> bool:
    here = Path(__file__).parent
    return any(Path(str(item.path)).is_relative_to(here) and item.get_closest_marker(marker)
               for item in session.items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if _selected(session, "ssh"):
        # cloud-vm's wheelhouse (cached by source hash), like the image: outside test timeouts.
        from codebolt_topo.errors import ProviderError
        from codebolt_topo.providers.ssh_wheelhouse import wheelhouse

        with contextlib.suppress(ProviderError):
            wheelhouse()
    if not _selected(session, "docker"):
        return
    docker_conftest = _docker_conftest()
    problem: str | None = docker_conftest._engine_problem()
    if problem is None:
        try:
            session.config.stash[_IMAGE] = docker_conftest._build_image()
        except Exception as error:
            problem = str(error)
    if problem is not None:
        session.config.stash[_PROBLEM] = problem


@pytest.fixture(scope="session")
def node_image(pytestconfig: pytest.Config) -> str:
    """The tag of a node image built from the current sources."""
    problem = pytestconfig.stash.get(_PROBLEM, None)
    if problem is not None:
        if os.environ.get("CODEBOLT_REQUIRE_DOCKER") == "1":
            pytest.fail(f"CODEBOLT_REQUIRE_DOCKER=1 but docker tests cannot run: {problem}")
        pytest.skip(problem)
    return pytestconfig.stash[_IMAGE]
