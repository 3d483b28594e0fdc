"""pytest plugin (``-p node_image_plugin``): the docker node image, built once per session.

The image is built (or found up to date by its content-hash tag) in ``pytest_collection_finish``,
outside any test's timeout, and only when a ``docker``-marked test was selected. The
``node_image`` fixture hands its tag to those tests. Without an engine they skip, unless
``CODEBOLT_REQUIRE_DOCKER=1``: then the same condition is an error, so CI on a machine with an
engine cannot pass with the docker tests silently skipped.

A plugin rather than a conftest so that every directory with docker tests (tests/docker,
tests/e2e) shares one build and one definition of the fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ENV = "CODEBOLT_REQUIRE_DOCKER"
_IMAGE = pytest.StashKey[str]()
_PROBLEM = pytest.StashKey[str]()


def engine_problem() -> str | None:
    """Why docker tests cannot run here, or None."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as error:
        return f"no Docker Engine reachable: {error}"
    return None


def build_image() -> str:
    """Run scripts/build-node-image.sh; the tag it printed."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-node-image.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the node image failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(item.get_closest_marker("docker") for item in session.items):
        return
    problem = engine_problem()
    if problem is None:
        try:
            session.config.stash[_IMAGE] = build_image()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            problem = str(error)
    if problem is not None:
        session.config.stash[_PROBLEM] = problem


@pytest.fixture(scope="session")
def node_image(pytestconfig: pytest.Config) -> str:
    """The tag of a node image built from the current sources."""
    problem = pytestconfig.stash.get(_PROBLEM, None)
    if problem is None and _IMAGE not in pytestconfig.stash:
        problem = "no docker-marked test was selected, so no node image was built"
    if problem is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but docker tests cannot run: {problem}")
        pytest.skip(problem)
    return pytestconfig.stash[_IMAGE]
