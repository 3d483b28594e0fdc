"""Helpers of the docker tests: topologies on the docker provider, and what the engine holds."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker

from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.model.state import State
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.docker_names import LABEL_MANAGED, MANAGED_BY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANAGED = {"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]}


def client() -> Any:
    return docker.from_env(timeout=60)


def labelled_leftovers() -> list[str]:
    """Names of every container, network and volume carrying our managed-by label."""
    engine = client()
    names = [f"container:{c.name}" for c in engine.containers.list(all=True, filters=MANAGED)]
    names += [f"network:{n.name}" for n in engine.networks.list(filters=MANAGED)]
    names += [f"volume:{v.name}" for v in engine.volumes.list(filters=MANAGED)]
    return sorted(names)


def remove_leftovers(names: set[str]) -> None:
    engine = client()
    for container in engine.containers.list(all=True, filters=MANAGED):
        if f"container:{container.name}" in names:
            container.remove(force=True)
    for network in engine.networks.list(filters=MANAGED):
        if f"network:{network.name}" in names:
            network.remove()
    for volume in engine.volumes.list(filters=MANAGED):
        if f"volume:{volume.name}" in names:
            volume.remove(force=True)


def containers_of(topology: str) -> list[Any]:
    filters = {"label": [f"{LABEL_MANAGED}={MANAGED_BY}", f"org.codebolt.topology={topology}"]}
    return list(client().containers.list(all=True, filters=filters))


def docker_example(name: str, directory: Path) -> Path:
    """``examples/<name>.yaml`` with every node placed on the docker provider."""
    text = (EXAMPLES / f"{name}.yaml").read_text()
    text = re.sub(r"^(  [a-z0-9_-]+): \{\}", r"\1: {provider: docker}", text, flags=re.M)
    target = directory / f"{name}.yaml"
    target.write_text(text)
    return target


def state_of(path: Path) -> State:
    return state_file_for(path, validate_file(path).topology.name).load()


@contextlib.contextmanager
def applied(path: Path) -> Iterator[Path]:
    """Apply ``path``; afterwards destroy it and check that nothing of it is left."""
    name = validate_file(path).topology.name
    try:
        apply_topology(path)
        yield path
    finally:
        destroy_topology(path)
        assert containers_of(name) == [], "containers left after destroy"
        shutil.rmtree(path.parent / ".codebolt", ignore_errors=True)
