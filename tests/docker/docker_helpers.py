"""Helpers of the docker tests: topologies on the docker provider, and what the engine holds."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.model.state import State
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.docker.names import LABEL_MANAGED, LABEL_STATE_DIR, MANAGED_BY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANAGED = {"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]}


def client() -> Any:
    return docker.from_env(timeout=60)


def _labels(item: Any) -> dict[str, str]:
    return dict(getattr(item, "labels", None) or item.attrs.get("Labels") or {})


def _ours(under: Path) -> Iterator[tuple[str, Any]]:
    """Every managed container, network and volume whose state directory lies under ``under``:
    what this test created, whatever other runs share the engine."""
    engine = client()
    kinds = (
        ("container", engine.containers.list(all=True, filters=MANAGED)),
        ("network", engine.networks.list(filters=MANAGED)),
        ("volume", engine.volumes.list(filters=MANAGED)),
    )
    for kind, items in kinds:
        for item in items:
            if _labels(item).get(LABEL_STATE_DIR, "").startswith(f"{under}/"):
                yield f"{kind}:{item.name}", item


def labelled_leftovers(under: Path) -> list[str]:
    """Names of our managed containers, networks and volumes created under ``under``."""
    return sorted(name for name, _ in _ours(under))


def remove_leftovers(under: Path) -> None:
    """Remove them, containers first (networks and volumes in use cannot go)."""
    found = sorted(_ours(under), key=lambda pair: not pair[0].startswith("container:"))
    for name, item in found:
        if name.startswith("network:"):
            item.remove()
        else:
            item.remove(force=True)


def containers_of(topology: str) -> list[Any]:
    """Containers of ``topology``. The SDK lists, then inspects each: one removed in between
    (an apply replacing it) makes that a 404, so the listing is simply taken again."""
    filters = {"label": [f"{LABEL_MANAGED}={MANAGED_BY}", f"org.codebolt.topology={topology}"]}
    for _ in range(10):
        with contextlib.suppress(docker.errors.NotFound):
            return list(client().containers.list(all=True, filters=filters))
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
