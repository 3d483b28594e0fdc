"""Container settings from a node's spec: limits, GPUs, mounts and the sandbox hardening (pure).

Everything here turns a node's :class:`ContainerSettings` into keyword arguments of the Docker SDK's
``containers.create`` without talking to the engine, so the security-relevant choices can be read
in one place and tested without Docker.

A sandbox node is meant for untrusted code. Its container drops every capability, cannot gain
privileges (``no-new-privileges``: setuid binaries do nothing), has a read-only root filesystem with
size-limited tmpfs for ``/workspace`` and ``/tmp``, runs as the image's non-root user, shares no
host namespace, mounts no docker socket, and is limited in processes, memory (no swap, so a hog
is OOM-killed at the limit) and CPU. Its only network is internal: no route out of the host,
only the topology's own containers, which still demand a token for every connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebolt_topo.errors import ConfigError
from codebolt_topo.providers.docker.names import WORKSPACE
from codebolt_topo.providers.docker.settings import ContainerSettings, is_host_mount

__all__ = [
    "NODE_UID",
    "SANDBOX_DEFAULTS",
    "Mount",
    "limits",
    "parse_volume",
    "sandbox_options",
]

#: The image's non-root user (see the Dockerfile); fixed so tmpfs ownership can name it.
NODE_UID = 10001
SANDBOX_DEFAULTS = {"cpus": 1.0, "memory": "512m", "pids": 256}
_SANDBOX_TMPFS_WORKSPACE = "256m"
_SANDBOX_TMPFS_TMP = "64m"
_DOCKER_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock")


@dataclass(frozen=True, slots=True)
class Mount:
    """One ``volumes`` entry: a host directory (``bind``) or a named volume."""

    source: str
    target: str
    read_only: bool
    bind: bool


def parse_volume(entry: str, base_dir: Path) -> Mount:
    """Read ``SOURCE:/path[:ro|rw]``; host paths are resolved against the topology's directory."""
    parts = entry.split(":")
    read_only = len(parts) == 3 and parts[2] == "ro"
    source, target = parts[0], parts[1]
    bind = is_host_mount(entry)
    if bind:
        source = str((base_dir / Path(source).expanduser()).resolve())
    return Mount(source=source, target=target, read_only=read_only, bind=bind)


def limits(settings: ContainerSettings) -> dict[str, Any]:
    """CPU, memory and pids limits; a sandbox node gets defaults for the ones it leaves out."""
    wanted: dict[str, Any] = {}
    if settings.sandbox:
        wanted.update(SANDBOX_DEFAULTS)
    if settings.resources is not None:
        wanted.update(settings.resources.model_dump(exclude_none=True))
    options: dict[str, Any] = {}
    if "cpus" in wanted:
        options["nano_cpus"] = int(float(wanted["cpus"]) * 1e9)
    if "memory" in wanted:
        # Swap equal to the limit means no swap: a memory hog meets the OOM killer at the limit
        # instead of thrashing the host.
        options["mem_limit"] = wanted["memory"]
        options["memswap_limit"] = wanted["memory"]
    if "pids" in wanted:
        options["pids_limit"] = int(wanted["pids"])
    return options


def sandbox_options(settings: ContainerSettings, mounts: list[Mount]) -> dict[str, Any]:
    """The hardening of a sandbox container (empty for other nodes)."""
    if not settings.sandbox:
        return {}
    for mount in mounts:  # validate refuses these with the line; this holds for the API too
        if mount.bind:
            what = (
                "a container engine socket"
                if Path(mount.source).name in _DOCKER_SOCKETS
                else "a host directory (use a named volume)"
            )
            raise ConfigError(f"volume {mount.source}: a sandbox node may not mount {what}")
    owner = f"uid={NODE_UID},gid={NODE_UID}"
    return {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "privileged": False,
        "user": f"{NODE_UID}:{NODE_UID}",
        "ipc_mode": "private",
        "tmpfs": {
            WORKSPACE: f"rw,nosuid,nodev,size={_SANDBOX_TMPFS_WORKSPACE},mode=0700,{owner}",
            "/tmp": f"rw,nosuid,nodev,size={_SANDBOX_TMPFS_TMP},mode=1777",
        },
    }
