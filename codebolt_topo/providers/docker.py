"""The docker provider: each node is a container running the node image.

Containers of one topology share a user-defined bridge network on which each answers to its node
name, so container-to-container edges use ``ws://<node>:3100``. The orchestrator, and local nodes,
reach a container through its port published on 127.0.0.1; a container reaches nodes on the host
through ``host.docker.internal`` (the engine's host gateway). Sandbox nodes sit only on an internal
network (no route out) that the topology's other containers join too; having no published port,
they are reached from this host at their address on that network, and their own egress firewall
(:mod:`docker_firewall`) keeps their code from opening connections to this host or anything else
off that network.

Everything created is labelled (see :mod:`docker_names`), so a re-run after a crash removes what
the crashed run left instead of duplicating it, and ``destroy`` removes only what was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.state import NodeState
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.node.config import LaunchConfig
from codebolt_topo.providers.base import (
    Category,
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)
from codebolt_topo.providers.docker_engine import DockerEngine
from codebolt_topo.providers.docker_entry import ENV_CONFIG
from codebolt_topo.providers.docker_firewall import seal
from codebolt_topo.providers.docker_image import ensure_image
from codebolt_topo.providers.docker_names import CONTAINER_PORT, LABEL_NODE, WORKSPACE, Names
from codebolt_topo.providers.docker_options import LABEL_SANDBOX, LABEL_VOLUMES, container_options
from codebolt_topo.providers.docker_ready import describe_exit, wait_ready

__all__ = ["HOST_GATEWAY", "DockerProvider"]

#: How a container names the host (mapped to the engine's host gateway in ``extra_hosts``).
HOST_GATEWAY = "host.docker.internal"


class DockerProvider(Provider):
    """Node daemons in containers of the node image, on a per-topology network."""

    name = "docker"
    category = Category.LOCAL
    capabilities = frozenset({"python", "docker", "container"})
    shares_host_ports = True

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.names = Names(context)
        self.engine = DockerEngine()
        self._networks = asyncio.Lock()

    async def create(self, launch: NodeLaunch) -> Placement:
        spec, node = launch.spec, launch.name
        image = await ensure_image(self.engine, spec, node)
        if spec.gpus is not None and "nvidia" not in await asyncio.to_thread(self.engine.runtimes):
            raise ProviderError(
                f"node {node!r} asks for gpus: {spec.gpus}, but this Docker Engine has no GPU "
                "runtime (install the NVIDIA Container Toolkit and restart dockerd, or remove gpus)"
            )
        await self._remove_leftovers(node)
        created_volumes = await self._volumes(launch)
        config = self._container_config(launch.config, spec.sandbox)
        options = container_options(
            launch, self.names, image, self.context.base_dir, self._markers(node), created_volumes
        )
        options["environment"][ENV_CONFIG] = config.model_dump_json()
        handle: dict[str, Any] = {
            "name": self.names.container(node),
            "sandbox": spec.sandbox,
            "volumes": created_volumes,
        }
        try:
            async with self._networks:
                networks = await self._join_networks(spec.sandbox)
                container = await asyncio.to_thread(
                    self.engine.start, options, [(n, node) for n in networks]
                )
            handle["id"] = container.id
            if spec.sandbox:
                await seal(self.engine, container.id, image, self.names.sandbox_network, node,
                           self.names.labels("helper", node))
            detected = await wait_ready(self.engine, container.id, node)
            host, port = await self._address(container.id, spec.sandbox)
        except BaseException:
            with contextlib.suppress(ProviderError):
                await self.destroy(handle, grace=1.0)
            raise
        handle["detected"] = detected
        return Placement(handle=handle, host=host, port=port)

    async def inspect(self, handle: dict[str, Any]) -> Observation:
        attrs = await asyncio.to_thread(self.engine.attrs, str(handle.get("id", "")))
        if attrs is None:
            return Observation(alive=False, reason=f"container {handle.get('name')} is gone")
        state = attrs.get("State", {})
        if state.get("Running") and not state.get("Paused") and not state.get("Restarting"):
            return Observation(alive=True)
        clean = (state.get("Status") == "exited" and state.get("ExitCode") == 0
                 and not state.get("OOMKilled"))  # the daemon stopped gracefully (docker stop)
        return Observation(alive=False, reason=describe_exit(state), clean_exit=clean)

    async def destroy(self, handle: dict[str, Any], *, grace: float = 5.0) -> None:
        if handle.get("id"):
            await asyncio.to_thread(self.engine.remove_container, str(handle["id"]), grace)
        await asyncio.to_thread(self.engine.remove_volumes, list(handle.get("volumes", [])))
        async with self._networks:
            await asyncio.to_thread(
                self.engine.remove_networks_if_unused, self.names.directory_filter("network")
            )

    async def discover(self) -> list[Discovered]:
        """Containers of this topology in this directory, whatever their lineage (a run killed
        before its first save leaves another lineage's), found by their labels. The handle
        carries what ``create`` records (id, name, created volumes): ``destroy`` removes it all."""
        containers = await asyncio.to_thread(
            self.engine.containers, self.names.directory_filter("node")
        )
        return [
            Discovered(
                node=container.labels.get(LABEL_NODE, ""),
                handle={
                    "id": container.id,
                    "name": container.name,
                    "volumes": json.loads(container.labels.get(LABEL_VOLUMES, "[]")),
                },
            )
            for container in containers
        ]

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """Containers of this topology by name on the shared network; anything on this host
        through the host gateway; anything else as the host sees it."""
        if peer.provider == self.name and peer.handle.get("name", "").startswith(
            self.names.prefix + "-"
        ):
            return f"ws://{peer.name}:{CONTAINER_PORT}"
        if peer.url is None or peer.host is None:
            return None
        if peer.host == "" or is_loopback(peer.host):
            return f"ws://{HOST_GATEWAY}:{peer.port}"
        return peer.url

    def _container_config(self, config: LaunchConfig, sandbox: bool) -> LaunchConfig:
        """The launch config as the daemon sees it inside: all interfaces of its own network
        namespace (only published or network-local), the workspace mount, a scratch state dir."""
        return config.model_copy(
            update={
                "host": "0.0.0.0",
                "port": CONTAINER_PORT,
                "workspace": WORKSPACE,
                "state_dir": "/tmp" if sandbox else "/home/codebolt",
            }
        )

    def _markers(self, node: str) -> dict[str, str]:
        return {
            "CODEBOLT_TOPOLOGY": self.context.topology,
            "CODEBOLT_NODE": node,
            "CODEBOLT_LINEAGE": self.context.lineage,
        }

    async def _remove_leftovers(self, node: str) -> None:
        """Remove containers (and their volumes) an interrupted run left for ``node``: they hold
        an admin token nobody knows any more, so they cannot be adopted."""
        leftovers = await asyncio.to_thread(
            self.engine.containers, self.names.leftover_filter(node)
        )
        for container in leftovers:
            volumes = json.loads(container.labels.get(LABEL_VOLUMES, "[]"))
            await asyncio.to_thread(self.engine.remove_container, container.id, 1.0)
            await asyncio.to_thread(self.engine.remove_volumes, volumes)

    async def _volumes(self, launch: NodeLaunch) -> list[str]:
        """Create the named volumes this node needs that do not exist yet; returns those (the
        ones ``destroy`` may remove). Volumes that existed before are the user's."""
        wanted = []
        if not launch.spec.sandbox and launch.spec.workspace is None:
            wanted.append(self.names.workspace_volume(launch.name))
        for entry in launch.spec.volumes:
            source = entry.split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                wanted.append(source)
        labels = self.names.labels("volume", launch.name)
        created = []
        for volume in wanted:
            if await asyncio.to_thread(self.engine.ensure_volume, volume, labels):
                created.append(volume)
        return created

    async def _join_networks(self, sandbox: bool) -> list[str]:
        """The networks a new container joins (held under the network lock)."""
        names = self.names
        if sandbox:
            await asyncio.to_thread(
                self.engine.ensure_network,
                names.sandbox_network,
                names.labels("network"),
                internal=True,
            )
            # Existing containers join so they can reach the sandbox node, and it them.
            for container in await asyncio.to_thread(
                self.engine.containers, names.instance_filter("node")
            ):
                if container.labels.get(LABEL_SANDBOX) != "true":
                    node = container.labels.get(LABEL_NODE, "")
                    await asyncio.to_thread(
                        self.engine.connect, names.sandbox_network, container.id, node
                    )
            return [names.sandbox_network]
        await asyncio.to_thread(
            self.engine.ensure_network, names.network, names.labels("network"), internal=False
        )
        if await asyncio.to_thread(self.engine.network_exists, names.sandbox_network):
            return [names.network, names.sandbox_network]
        return [names.network]

    async def _address(self, container_id: str, sandbox: bool) -> tuple[str, int]:
        """Where this host reaches the daemon: the published port, or for a sandbox node (no
        published ports on internal networks) its address on the sandbox network."""
        attrs = await asyncio.to_thread(self.engine.attrs, container_id) or {}
        settings = attrs.get("NetworkSettings", {})
        if sandbox:
            endpoint = settings.get("Networks", {}).get(self.names.sandbox_network, {})
            address = endpoint.get("IPAddress")
            if not address:
                raise ProviderError(f"container {container_id[:12]} has no sandbox address")
            return str(address), CONTAINER_PORT
        bindings = settings.get("Ports", {}).get(f"{CONTAINER_PORT}/tcp") or []
        if not bindings:
            raise ProviderError(f"container {container_id[:12]} has no published port")
        return str(bindings[0]["HostIp"] or "127.0.0.1"), int(bindings[0]["HostPort"])
