"""Docker's node settings: the container a node runs in (``image``, ``resources``, ``gpus``,
``volumes``, ``sandbox``), flat node fields as topology.yaml has always written them.

Only container providers honour them: a local node must not silently ignore ``sandbox: true``
(that would be a security hole), so any other provider refuses them unless it accepts docker's
settings (hybrid passes them on to its placements).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from codebolt_topo.model.settings import NodeSettings, SettingsBlock
from codebolt_topo.model.topology import NodeSpec

__all__ = [
    "MEMORY_PATTERN",
    "VOLUME_PATTERN",
    "ContainerSettings",
    "Resources",
    "is_host_mount",
]

#: ``512m``, ``2g``, ``1073741824``: bytes with an optional binary unit, as docker reads them.
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$"
#: ``SOURCE:/path[:ro|rw]``; a SOURCE starting with ``.`` or ``/`` is a host directory, anything
#: else a named volume.
VOLUME_PATTERN = r"^[^:]+:/[^:]*(:(ro|rw))?$"
_HOST_PATH_STARTS = (".", "/", "~")


def is_host_mount(entry: str) -> bool:
    """Whether a ``volumes`` entry mounts a host directory (its source is a path) rather than a
    named volume."""
    return entry.startswith(_HOST_PATH_STARTS)


class Resources(SettingsBlock):
    """Limits on a container node; omitted fields are unlimited (or the sandbox defaults)."""

    cpus: float | None = Field(None, gt=0, description="CPU cores, fractional allowed (1.5).")
    memory: Annotated[str, StringConstraints(pattern=MEMORY_PATTERN)] | None = Field(
        None, description="Memory limit such as 512m or 2g; the kernel OOM-kills past it."
    )
    pids: int | None = Field(
        None, ge=8, description="Most processes and threads at once (stops fork bombs)."
    )


class ContainerSettings(NodeSettings):
    """How a node's container is made; read by docker (and any provider that accepts them)."""

    refusal: ClassVar[str] = (
        "{fields}: only container providers honour this; set provider: docker or remove it"
    )
    # Launch hashes of docker nodes have always kept None inside ``resources``.
    launch_keeps_none: ClassVar[bool] = True

    image: str | None = Field(
        None,
        min_length=1,
        description="Container image of the node (docker). Defaults to codebolt-node:<version>, "
        "built by scripts/build-node-image.sh.",
    )
    resources: Resources | None = Field(
        None, description="CPU, memory and process limits of the node's container (docker)."
    )
    gpus: Annotated[int, Field(ge=1)] | Literal["all"] | None = Field(
        None,
        description="GPUs handed to the container (docker device requests): a count or 'all'. "
        "Needs an engine with the NVIDIA runtime.",
    )
    volumes: list[Annotated[str, StringConstraints(pattern=VOLUME_PATTERN)]] = Field(
        default_factory=list,
        description="Extra mounts 'SOURCE:/path[:ro]' (docker): a SOURCE starting with . or / is "
        "a host directory relative to the topology file, anything else a named volume.",
    )
    sandbox: bool = Field(
        False,
        description="Harden the node's container for untrusted code (docker): no capabilities, "
        "read-only root, tmpfs workspace, process/memory/cpu limits, no egress.",
    )

    @classmethod
    def check(cls, spec: NodeSpec) -> str | None:
        if cls.of(spec).sandbox and spec.workspace is not None:
            return (
                "workspace: a sandbox node gets a private tmpfs workspace; remove workspace "
                "(or mount what it needs read-only with volumes)"
            )
        return None
