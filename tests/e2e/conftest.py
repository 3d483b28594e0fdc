"""Use-case tests that need Docker reuse the docker tests' machinery (tests/docker).

The node image is built (or found up to date) once, in ``pytest_collection_finish``, outside any
test's timeout, and only when a docker-marked use-case test was selected. ``node_image`` skips
without an engine (an error under ``CODEBOLT_REQUIRE_DOCKER=1``).
"""

from __future__ import annotations

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


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    if not any(Path(str(item.path)).is_relative_to(here) and item.get_closest_marker("docker")
               for item in session.items):
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
