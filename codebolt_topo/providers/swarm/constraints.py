"""Where a node's task may run: ``requires:`` and declared ``capabilities:`` as placement
constraints on swarm node labels, and ``gpus:`` as a generic resource (pure).

A capability ``gpu`` becomes ``node.labels.codebolt.gpu == true``; one with a version,
``python:3.12``, becomes ``node.labels.codebolt.python == 3.12``. Capabilities every task has
(the node image's Python, being a container) add no constraint. An operator marks what a machine
offers with ``docker node update --label-add codebolt.gpu=true NODE``; GPUs themselves are
counted by the scheduler from each daemon's ``node-generic-resources`` (kind ``NVIDIA-GPU``).

The same pieces map onto Kubernetes: the constraints are a nodeSelector, the generic resource
an extended resource request (``nvidia.com/gpu``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.providers.docker.settings import ContainerSettings

__all__ = [
    "GPU_KIND",
    "IMAGE_OFFERS",
    "LABEL_PREFIX",
    "constraints",
    "generic_resources",
    "label_hint",
    "missing_labels",
    "wanted_labels",
]

LABEL_PREFIX = "codebolt."
GPU_KIND = "NVIDIA-GPU"
#: What every task has by being the node image: no constraint needed.
IMAGE_OFFERS = frozenset({"python", "container", "swarm"})


def _label(capability: str) -> tuple[str, str]:
    name, _, version = capability.partition(":")
    return f"{LABEL_PREFIX}{name}", version or "true"


def wanted_labels(spec: NodeSpec) -> dict[str, str]:
    """Node labels a swarm node must carry to run ``spec``'s task, by label key."""
    wanted: dict[str, str] = {}
    for capability in (*spec.requires, *spec.capabilities):
        if capability in IMAGE_OFFERS or capability.startswith("python:"):
            continue
        key, value = _label(capability)
        wanted[key] = value
    return wanted


def constraints(spec: NodeSpec) -> list[str]:
    """The service's placement constraints (engine syntax)."""
    return [f"node.labels.{key} == {value}" for key, value in sorted(wanted_labels(spec).items())]


def generic_resources(spec: NodeSpec) -> dict[str, int]:
    """GPUs the task reserves, as the scheduler counts them."""
    gpus = ContainerSettings.of(spec).gpus
    return {GPU_KIND: int(gpus)} if isinstance(gpus, int) else {}


def _has_gpus(node: Mapping[str, Any], count: int) -> bool:
    resources = node.get("Description", {}).get("Resources", {}).get("GenericResources") or []
    found = 0
    for resource in resources:
        named = resource.get("NamedResourceSpec") or {}
        discrete = resource.get("DiscreteResourceSpec") or {}
        if named.get("Kind") == GPU_KIND:
            found += 1
        if discrete.get("Kind") == GPU_KIND:
            found += int(discrete.get("Value", 0))
    return found >= count


def missing_labels(spec: NodeSpec, nodes: Iterable[Mapping[str, Any]]) -> str | None:
    """Why no ready, active swarm node can take ``spec``'s task (``nodes`` as the engine lists
    them), or None when one can."""
    wanted = wanted_labels(spec)
    gpus = generic_resources(spec).get(GPU_KIND, 0)
    usable = [
        node
        for node in nodes
        if node.get("Status", {}).get("State") == "ready"
        and node.get("Spec", {}).get("Availability") == "active"
    ]
    for node in usable:
        labels = node.get("Spec", {}).get("Labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()) and _has_gpus(node, gpus):
            return None
    parts = [f"{key}={value}" for key, value in sorted(wanted.items())]
    if gpus:
        parts.append(f"{gpus} {GPU_KIND} generic resource(s)")
    return f"no ready, active swarm node of {len(usable)} has {', '.join(parts) or 'room'}"


def label_hint(spec: NodeSpec) -> str:
    """The command that marks a machine as offering what ``spec`` needs."""
    adds = " ".join(f"--label-add {k}={v}" for k, v in sorted(wanted_labels(spec).items()))
    hint = f"docker node update {adds} NODE" if adds else ""
    if generic_resources(spec):
        gpu = f"start its dockerd with --node-generic-resource {GPU_KIND}=<gpu uuid>"
        hint = f"{hint}, and {gpu}" if hint else gpu
    return hint or "make a swarm node ready and active"
