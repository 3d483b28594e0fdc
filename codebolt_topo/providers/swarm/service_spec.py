"""Keyword arguments of ``services.create`` for one node (pure apart from the SDK's types).

Collects in one place what a node's service looks like: one replicated task restarted by the
engine whatever its exit (``condition: any``, a second apart: Swarm heals a crash itself, the
orchestrator only re-pushes the wiring the new daemon lacks), DNS round robin endpoints (the
service name resolves to the task itself: no virtual IP, no IPVS, which many kernels lack),
its launch config as a secret file, reservations and limits, placement constraints, and the
sandbox hardening.

Nothing secret is in what ``docker service inspect`` shows: the environment holds only the
node's markers (its ``env:`` reaches the daemon inside the launch config, in the secret), the
command names a module, the labels name the topology and node.
"""

from __future__ import annotations

from typing import Any

from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.providers.docker.names import WORKSPACE
from codebolt_topo.providers.docker.sandbox import NODE_UID, SANDBOX_DEFAULTS
from codebolt_topo.providers.docker.settings import ContainerSettings
from codebolt_topo.providers.swarm.constraints import constraints, generic_resources

__all__ = [
    "LAUNCH_FILE",
    "LAUNCH_TARGET",
    "TASK_COMMAND",
    "resources",
    "sandbox_options",
    "service_options",
]

#: Where the task finds its launch config (a Docker secret: tmpfs, never on a disk).
LAUNCH_TARGET = "codebolt-launch"
LAUNCH_FILE = f"/run/secrets/{LAUNCH_TARGET}"
TASK_COMMAND = ["python", "-m", "codebolt_topo.providers.swarm.task_main"]
_RESTART_DELAY_NS = 1_000_000_000
_STOP_GRACE_NS = 5_000_000_000
_SANDBOX_TMPFS = {WORKSPACE: (256 * 2**20, 0o700), "/tmp": (64 * 2**20, 0o1777)}


def _bytes(value: str) -> int:
    import docker.utils

    return int(docker.utils.parse_bytes(value))


def resources(settings: ContainerSettings) -> dict[str, Any]:
    """Limits, and the same amounts reserved, so the scheduler places a task only where its
    limits fit; GPUs are reserved as generic resources. A sandbox gets docker's defaults."""
    wanted: dict[str, Any] = dict(SANDBOX_DEFAULTS) if settings.sandbox else {}
    if settings.resources is not None:
        wanted.update(settings.resources.model_dump(exclude_none=True))
    limits: dict[str, int] = {}
    if "cpus" in wanted:
        limits["NanoCPUs"] = int(float(wanted["cpus"]) * 1e9)
    if "memory" in wanted:
        limits["MemoryBytes"] = _bytes(str(wanted["memory"]))
    result: dict[str, Any] = {}
    if limits:
        result["Reservations"] = dict(limits)
    if "pids" in wanted:
        limits["Pids"] = int(wanted["pids"])
    if limits:
        result["Limits"] = limits
    return result


def sandbox_options(settings: ContainerSettings) -> dict[str, Any]:
    """The hardening Swarm can express for a sandbox task (empty for other nodes): every
    capability dropped (so a setuid binary gains nothing), read-only root, the image's non-root
    user, size-limited tmpfs for the workspace and /tmp. Its network (internal only) is chosen
    by the provider."""
    if not settings.sandbox:
        return {}
    import docker.types

    mounts = [
        docker.types.Mount(
            target, "", type="tmpfs", tmpfs_size=size, tmpfs_mode=mode, read_only=False
        )
        for target, (size, mode) in _SANDBOX_TMPFS.items()
    ]
    return {
        "cap_drop": ["ALL"],
        "read_only": True,
        "user": f"{NODE_UID}:{NODE_UID}",
        "mounts": mounts,
    }


def service_options(
    spec: NodeSpec,
    *,
    name: str,
    image: str,
    labels: dict[str, str],
    markers: dict[str, str],
    secret: tuple[str, str],
    networks: list[str],
    alias: str,
) -> dict[str, Any]:
    """Everything ``services.create`` takes for the node (``secret``: its id and name)."""
    import docker.types

    settings = ContainerSettings.of(spec)
    secret_id, secret_name = secret
    wanted_resources = resources(settings)
    gpus = generic_resources(spec)
    if gpus:
        wanted_resources.setdefault("Reservations", {})["GenericResources"] = [
            {"DiscreteResourceSpec": {"Kind": kind, "Value": count}} for kind, count in gpus.items()
        ]
    options: dict[str, Any] = {
        "image": image,
        "command": TASK_COMMAND,
        "name": name,
        "labels": labels,
        "container_labels": labels,
        "hostname": alias,
        "env": [f"{key}={value}" for key, value in markers.items()],
        "init": True,
        "networks": [docker.types.NetworkAttachmentConfig(n, aliases=[alias]) for n in networks],
        "endpoint_spec": docker.types.EndpointSpec(mode="dnsrr"),
        "mode": docker.types.ServiceMode("replicated", replicas=1),
        "restart_policy": docker.types.RestartPolicy(
            condition="any", delay=_RESTART_DELAY_NS, max_attempts=0
        ),
        "stop_grace_period": _STOP_GRACE_NS,
        "secrets": [
            docker.types.SecretReference(
                secret_id,
                secret_name,
                filename=LAUNCH_TARGET,
                uid=str(NODE_UID),
                gid=str(NODE_UID),
                mode=0o400,
            )
        ],
        "constraints": constraints(spec),
        **sandbox_options(settings),
    }
    if wanted_resources:
        options["resources"] = wanted_resources
    return options
