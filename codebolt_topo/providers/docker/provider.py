"""The docker provider: each node is a container running the node image.

Containers of one topology share a user-defined bridge network on which each answers to its node
name, so container-to-container edges use ``ws://<node>:3100``. The orchestrator, and local nodes,
reach a container through its port published on 127.0.0.1; a container reaches nodes on the host
through ``host.docker.internal`` (the engine's host gateway). Sandbox nodes sit only on an internal
network (no route out) that the topology's other containers join too; having no published port,
they are reached from this host at their address on that network, and their own egress firewall
(:mod:`.firewall`) keeps their code from opening connections to this host or anything else
off that network.

``create`` reports its steps (checking or pulling the image, creating the container, sealing a
sandbox, waiting for the daemon) through the context's progress; a node's log is its
container's (:mod:`.logs`).

Everything created is labelled (see :mod:`.names`), so a re-run after a crash removes what
the crashed run left instead of duplicating it, and ``destroy`` removes only what was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import weakref
from collections.abc import AsyncIterator

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.state import NodeState
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)
from codebolt_topo.providers.docker.container_main import ENV_CONFIG
from codebolt_topo.providers.docker.engine import DockerEngine, in_thread
from codebolt_topo.providers.docker.firewall import seal
from codebolt_topo.providers.docker.handle import DockerHandle
from codebolt_topo.providers.docker.image import ensure_image
from codebolt_topo.providers.docker.names import CONTAINER_PORT, LABEL_NODE, Names
from codebolt_topo.providers.docker.options import (
    LABEL_SANDBOX,
    LABEL_VOLUMES,
    config_inside,
    container_options,
)
from codebolt_topo.providers.docker.ready import describe_exit, wait_ready
from codebolt_topo.providers.docker.rules import DockerRules
from codebolt_topo.providers.docker.settings import ContainerSettings, is_host_mount

__all__ = ["HOST_GATEWAY", "DockerProvider"]

#: How a container names the host (mapped to the engine's host gateway in ``extra_hosts``).
HOST_GATEWAY = "host.docker.internal"


class _NetworkGuard:
    """What must be serialised around a topology's networks, and nothing more.

    ``lock`` covers deciding which networks a new container joins and making them; creating,
    starting and waiting for the container run outside it, so N containers start together as
    compose starts them. Two things would go wrong without the counts:

    * a sandbox node connects the containers that exist when it joins; one decided before the
      sandbox network existed but not created yet would be missed. ``creating`` counts those
      decided and not yet created, and a sandbox node waits (``changed``) until it is 0;
    * the engine lists no endpoint for a container that is not running yet, so a destroy
      removing networks no container uses would take the network from under it. ``starting``
      counts those decided and not yet running, and a destroy leaves the networks then (the
      last container of the topology to go removes them).

    ``present`` is what the holder learnt of each network (made or seen, or seen missing), so
    N nodes started together ask the engine once rather than N times under the lock. It is
    forgotten when no container is starting any more, and by a removal: a long-lived process
    (the watch) must not trust it after someone else may have removed the network."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.changed = asyncio.Condition(self.lock)
        self.creating = 0
        self.starting = 0
        self.present: dict[str, bool] = {}

    async def created(self) -> None:
        """One container decided under the lock now exists."""
        async with self.changed:
            self.creating -= 1
            self.changed.notify_all()


#: Per event loop, per network name: see ``DockerProvider._networks``.
_NETWORK_GUARDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _NetworkGuard]] = (
    weakref.WeakKeyDictionary()
)


class DockerProvider(DockerRules, Provider[DockerHandle]):
    """Node daemons in containers of the node image, on a per-topology network."""

    capabilities = frozenset({"python", "docker", "container"})

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.names = Names(context)
        self.engine = DockerEngine()

    @property
    def _networks(self) -> _NetworkGuard:
        """The guard of this topology's networks, shared by every DockerProvider of this
        event loop: hybrid's docker delegate and the docker provider itself would otherwise
        each create the network (the engine takes a second network of the same name)."""
        guards = _NETWORK_GUARDS.setdefault(asyncio.get_running_loop(), {})
        return guards.setdefault(self.names.network, _NetworkGuard())

    async def create(self, launch: NodeLaunch) -> Placement[DockerHandle]:
        spec, node = launch.spec, launch.name
        step = functools.partial(self.context.step, node)
        settings = ContainerSettings.of(spec)
        step("checking the image")
        image = await ensure_image(self.engine, spec, node, step)
        if settings.gpus is not None and "nvidia" not in await in_thread(self.engine.runtimes):
            raise ProviderError(
                f"node {node!r} asks for gpus: {settings.gpus}, but this Docker Engine has no GPU "
                "runtime (install the NVIDIA Container Toolkit and restart dockerd, or remove gpus)"
            )
        await self._remove_leftovers(node)
        created_volumes = await self._volumes(launch)
        config = config_inside(launch.config, settings.sandbox)
        options = container_options(
            launch,
            self.names,
            image,
            self.context.base_dir,
            self.context.markers(node),
            created_volumes,
        )
        options["environment"][ENV_CONFIG] = config.model_dump_json()
        # The narrative store beside /workspace would be /workspace.narrative, in the root
        # directory the node's user cannot write: keep it in the node's own state dir.
        options["environment"].setdefault("CODEBOLT_STATE_DIR", config.state_dir)
        handle: DockerHandle = {
            "name": self.names.container(node),
            "sandbox": settings.sandbox,
            "volumes": created_volumes,
        }
        try:
            step("creating the container")
            guard = self._networks
            async with guard.lock:
                networks = await self._join_networks(settings.sandbox, guard)
                guard.creating += 1
                guard.starting += 1
            try:
                try:
                    container = await in_thread(
                        self.engine.create, options, [(n, node) for n in networks]
                    )
                finally:
                    await guard.created()
                handle["id"] = container.id
                await in_thread(self.engine.start_created, container)
            finally:
                guard.starting -= 1
                if not guard.starting:
                    guard.present.clear()
            if settings.sandbox:
                step("sealing the sandbox")
                await seal(
                    self.engine,
                    container.id,
                    image,
                    self.names.sandbox_network,
                    node,
                    self.names.labels("helper", node),
                )
            step("waiting for the daemon")
            detected = await wait_ready(self.engine, container.id, node)
            host, port = await self._address(container.id, settings.sandbox)
        except BaseException:
            with contextlib.suppress(ProviderError):
                await self.destroy(handle, grace=1.0)
            raise
        handle["detected"] = detected
        return Placement(handle=handle, host=host, port=port)

    async def logs(self, handle: DockerHandle, *, follow: bool) -> AsyncIterator[str]:
        """The container's log, through the SDK (following it with ``follow``)."""
        from codebolt_topo.providers.docker.logs import container_log

        async for line in container_log(self.engine, str(handle.get("id", "")), follow=follow):
            yield line

    async def inspect(self, handle: DockerHandle) -> Observation:
        attrs = await in_thread(self.engine.attrs, str(handle.get("id", "")))
        if attrs is None:
            return Observation(
                alive=False, reason=f"container {handle.get('name')} is gone", gone=True
            )
        state = attrs.get("State", {})
        if state.get("Running") and not state.get("Paused") and not state.get("Restarting"):
            return Observation(alive=True)
        clean = (
            state.get("Status") == "exited"
            and state.get("ExitCode") == 0
            and not state.get("OOMKilled")
        )  # the daemon stopped gracefully (docker stop)
        return Observation(alive=False, reason=describe_exit(state), clean_exit=clean)

    async def destroy(self, handle: DockerHandle, *, grace: float = 5.0) -> None:
        if handle.get("id"):
            await in_thread(self.engine.remove_container, str(handle["id"]), grace)
        await in_thread(self.engine.remove_volumes, list(handle.get("volumes", [])))
        guard = self._networks
        async with guard.lock:
            if guard.starting:
                return  # the network is theirs now; the last of them to go removes it
            guard.present.clear()
            await in_thread(
                self.engine.remove_networks_if_unused, self.names.directory_filter("network")
            )

    async def discover(self) -> list[Discovered[DockerHandle]]:
        """Containers of this topology in this directory, whatever their lineage (a run killed
        before its first save leaves another lineage's), found by their labels. The handle
        carries what ``create`` records (id, name, created volumes): ``destroy`` removes it all."""
        containers = await in_thread(self.engine.containers, self.names.directory_filter("node"))
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
            return f"{peer.scheme}://{HOST_GATEWAY}:{peer.port}"
        return peer.url

    async def _remove_leftovers(self, node: str) -> None:
        """Remove containers (and their volumes) an interrupted run left for ``node``: they hold
        an admin token nobody knows any more, so they cannot be adopted."""
        leftovers = await in_thread(self.engine.containers, self.names.leftover_filter(node))
        for container in leftovers:
            volumes = json.loads(container.labels.get(LABEL_VOLUMES, "[]"))
            await in_thread(self.engine.remove_container, container.id, 1.0)
            await in_thread(self.engine.remove_volumes, volumes)

    async def _volumes(self, launch: NodeLaunch) -> list[str]:
        """Create the named volumes this node needs that do not exist yet; returns those (the
        ones ``destroy`` may remove). Volumes that existed before are the user's."""
        wanted = []
        settings = ContainerSettings.of(launch.spec)
        if not settings.sandbox and launch.spec.workspace is None:
            wanted.append(self.names.workspace_volume(launch.name))
        for entry in settings.volumes:
            source = entry.split(":", 1)[0]
            if not is_host_mount(entry):
                wanted.append(source)
        labels = self.names.labels("volume", launch.name)
        created = []
        for volume in wanted:
            if await in_thread(self.engine.ensure_volume, volume, labels):
                created.append(volume)
        return created

    async def _join_networks(self, sandbox: bool, guard: _NetworkGuard) -> list[str]:
        """The networks a new container joins, made where missing (held under the guard's
        lock; see :class:`_NetworkGuard`)."""
        names, present = self.names, guard.present
        if sandbox:
            if not present.get(names.sandbox_network):
                await in_thread(
                    self.engine.ensure_network,
                    names.sandbox_network,
                    names.labels("network"),
                    internal=True,
                )
                present[names.sandbox_network] = True
            # From here on others join it too; those decided before must exist to be connected.
            await guard.changed.wait_for(lambda: guard.creating == 0)
            # Existing containers join so they can reach the sandbox node, and it them.
            for container in await in_thread(self.engine.containers, names.instance_filter("node")):
                if container.labels.get(LABEL_SANDBOX) != "true":
                    node = container.labels.get(LABEL_NODE, "")
                    await in_thread(self.engine.connect, names.sandbox_network, container.id, node)
            return [names.sandbox_network]
        if not present.get(names.network):
            await in_thread(
                self.engine.ensure_network, names.network, names.labels("network"), internal=False
            )
            present[names.network] = True
        if names.sandbox_network not in present:
            present[names.sandbox_network] = await in_thread(
                self.engine.network_exists, names.sandbox_network
            )
        if present[names.sandbox_network]:
            return [names.network, names.sandbox_network]
        return [names.network]

    async def _address(self, container_id: str, sandbox: bool) -> tuple[str, int]:
        """Where this host reaches the daemon: the published port, or for a sandbox node (no
        published ports on internal networks) its address on the sandbox network."""
        attrs = await in_thread(self.engine.attrs, container_id) or {}
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
