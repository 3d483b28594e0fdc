"""Keyword arguments of ``containers.create`` for one node (pure, testable without Docker).

Collects in one place what a node's container looks like: image, names and labels, the published
port (127.0.0.1 only), mounts, environment, limits, GPUs and the sandbox hardening from
:mod:`.sandbox`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codebolt_topo.providers.base import NodeLaunch
from codebolt_topo.providers.docker.names import CONTAINER_PORT, WORKSPACE, Names
from codebolt_topo.providers.docker.sandbox import limits, parse_volume, sandbox_options
from codebolt_topo.providers.docker.settings import ContainerSettings
from codebolt_topo.wire.config import LaunchConfig

__all__ = ["LABEL_SANDBOX", "LABEL_VOLUMES", "PUBLISH_HOST", "config_inside", "container_options"]

PUBLISH_HOST = "127.0.0.1"
LABEL_SANDBOX = "org.codebolt.sandbox"
#: Volumes created for this container, so a later run that finds it orphaned removes them too.
LABEL_VOLUMES = "org.codebolt.volumes"


def _device_requests(gpus: int | str | None) -> list[Any]:
    if gpus is None:
        return []
    import docker.types

    count = -1 if gpus == "all" else int(gpus)
    return [docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])]


def container_options(
    launch: NodeLaunch,
    names: Names,
    image: str,
    base_dir: Path,
    markers: dict[str, str],
    created_volumes: list[str],
) -> dict[str, Any]:
    """Everything but the network attachment, which the provider adds under its network lock."""
    spec, node = launch.spec, launch.name
    settings = ContainerSettings.of(spec)
    mounts = [parse_volume(entry, base_dir) for entry in settings.volumes]
    volumes: dict[str, dict[str, str]] = {
        m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts
    }
    if not settings.sandbox:
        # A workspace set in the file is a host directory; otherwise a volume of this node.
        source = launch.config.workspace if spec.workspace else names.workspace_volume(node)
        volumes[source] = {"bind": WORKSPACE, "mode": "rw"}
    labels = {
        **names.labels("node", node),
        LABEL_SANDBOX: "true" if settings.sandbox else "false",
        LABEL_VOLUMES: json.dumps(created_volumes),
    }
    options: dict[str, Any] = {
        "image": image,
        "name": names.container(node),
        "hostname": node,
        "labels": labels,
        "environment": {**spec.env, **markers},
        "volumes": volumes,
        "init": True,
        "detach": True,
        **limits(settings),
        **sandbox_options(settings, mounts),
    }
    if not settings.sandbox:
        options["ports"] = {f"{CONTAINER_PORT}/tcp": (PUBLISH_HOST, spec.port)}
        options["extra_hosts"] = {"host.docker.internal": "host-gateway"}
    device_requests = _device_requests(settings.gpus)
    if device_requests:
        options["device_requests"] = device_requests
    return options


def config_inside(config: LaunchConfig, sandbox: bool) -> LaunchConfig:
    """The launch config as the daemon sees it inside a container (a docker node's, a swarm
    task's): all interfaces of its own network namespace (only published or network-local), the
    workspace mount, a scratch state dir."""
    return config.model_copy(
        update={
            "host": "0.0.0.0",
            "port": CONTAINER_PORT,
            "workspace": WORKSPACE,
            "state_dir": "/tmp" if sandbox else "/home/codebolt",
        }
    )
