"""Helpers of the swarm tests: what the manager holds for a test's topologies, and running work
on their nodes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
from cluster import client

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.history import Discard
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.model.state import State
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.docker.names import LABEL_MANAGED, LABEL_STATE_DIR, MANAGED_BY

MANAGED = {"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]}


def _labels(item: dict[str, Any]) -> dict[str, str]:
    return dict((item.get("Spec") or item).get("Labels") or {})


def _ours(under: Path) -> Iterator[tuple[str, str]]:
    """(kind, name) of every managed service, secret, network and container created by a
    topology whose state directory lies under ``under``."""
    api = client().api
    listed = (
        ("service", api.services(filters=MANAGED)),
        ("secret", api.secrets(filters=MANAGED)),
        ("network", api.networks(filters=MANAGED)),
        ("container", api.containers(all=True, filters=MANAGED)),
    )
    for kind, items in listed:
        for item in items:
            if _labels(item).get(LABEL_STATE_DIR, "").startswith(f"{under}/"):
                name = (item.get("Spec") or {}).get("Name") or item.get("Name") or item["Id"]
                yield kind, str(name if isinstance(name, str) else item["Id"])


def leftovers(under: Path) -> list[str]:
    return sorted(f"{kind}:{name}" for kind, name in _ours(under))


def remove_leftovers(under: Path) -> None:
    """Services and containers first: secrets and networks in use cannot go."""
    api = client().api
    order = {"service": 0, "container": 1, "secret": 2, "network": 3}
    for kind, name in sorted(_ours(under), key=lambda pair: order[pair[0]]):
        with contextlib.suppress(docker.errors.NotFound):
            if kind == "service":
                api.remove_service(name)
            elif kind == "container":
                api.remove_container(name, force=True, v=True)
            elif kind == "secret":
                _retry(lambda name=name: api.remove_secret(name))
            else:
                _retry(lambda name=name: api.remove_network(name))


def _retry(action: Callable[[], object], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            action()
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def state_of(path: Path) -> State:
    return state_file_for(path, validate_file(path).topology.name).load()


@contextlib.contextmanager
def applied(path: Path) -> Iterator[Path]:
    """Apply ``path``; afterwards destroy it (giving up the nodes' history when the block
    failed: a node it left unreachable must not hide the failure behind a refused destroy)."""
    try:
        apply_topology(path)
        yield path
    except BaseException:
        destroy_topology(path, discard=Discard(every=True))
        raise
    else:
        destroy_topology(path)
    finally:
        shutil.rmtree(path.parent / ".codebolt", ignore_errors=True)


def run_on(path: Path, targets: list[str], shell: str, timeout: float = 60) -> dict[str, Any]:
    """Run ``shell`` on ``targets`` through the topology's entry node; each target's result."""
    state = state_of(path)
    entry = state.nodes[validate_file(path).graph.entries()[0]]
    assert entry.url is not None

    async def go() -> dict[str, Any]:
        async with NodeClient.connect(entry.url, entry.admin_token) as node:  # type: ignore[arg-type]
            handle = await node.exec(
                targets if len(targets) > 1 else targets[0], shell=shell, timeout=timeout
            )
            return dict((await handle.result()).nodes)

    return asyncio.run(go())


def tasks_of(service: str) -> list[dict[str, Any]]:
    return list(client().api.tasks(filters={"service": service}))


def running_tasks(service: str) -> list[dict[str, Any]]:
    return [
        t
        for t in tasks_of(service)
        if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    ]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held (checked every 0.25 s), or AssertionError."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - started
