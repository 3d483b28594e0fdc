"""Docker tests: a real engine, the node image built once per session, nothing left behind.

The image is built (or found up to date by its content-hash tag) in ``pytest_collection_finish``,
outside any test's timeout, and only when docker tests were selected. Without an engine the tests
skip, unless ``CODEBOLT_REQUIRE_DOCKER=1``: then the same condition is an error, so CI on a machine
with an engine cannot pass with the docker tests silently skipped.

Every test gets ``docker_guard``: after it, passed or failed, anything labelled by a test topology
is removed, and a test that left something behind fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "CODEBOLT_REQUIRE_DOCKER"
_IMAGE = pytest.StashKey[str]()
_PROBLEM = pytest.StashKey[str]()


def _engine_problem() -> str | None:
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


def _build_image() -> str:
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
    here = Path(__file__).parent
    if not any(Path(str(item.path)).is_relative_to(here) for item in session.items):
        return
    problem = _engine_problem()
    if problem is None:
        try:
            session.config.stash[_IMAGE] = _build_image()
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            problem = str(error)
    if problem is not None:
        session.config.stash[_PROBLEM] = problem


@pytest.fixture(scope="session")
def node_image(pytestconfig: pytest.Config) -> str:
    """The tag of a node image built from the current sources."""
    problem = pytestconfig.stash.get(_PROBLEM, None)
    if problem is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but docker tests cannot run: {problem}")
        pytest.skip(problem)
    return pytestconfig.stash[_IMAGE]


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
