"""The swarm provider: each node is a Swarm service of the node image, one replica.

Services of one topology share an attachable overlay network on which each answers to its
service name, so edges between them use ``ws://<service>:3100`` on any machine of the swarm. The
orchestrator reaches a node through its relay: a small container on this machine (the manager),
attached to the same overlay and published on ``127.0.0.1`` only (:mod:`.relay_main`). Nothing
is published through Swarm's ingress, which would open the port on every interface of every
machine. Sandbox nodes sit only on an internal overlay (no route out) that the topology's other
services join too.

Swarm keeps each task running (restart on any exit, rescheduling when a machine is lost); the
provider reports a node alive while its service exists and Swarm is bringing its task back, and
says on which machine it runs. A daemon that came back this way has lost the wiring pushed to its
predecessor; the reconciler sees that in its heartbeat (generation 0) and pushes it again.

Everything created is labelled (see :mod:`codebolt_topo.providers.docker.names`), so a re-run
after a crash removes what the crashed run left and ``destroy`` removes only what was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
import weakref
from collections.abc import AsyncIterator

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.state import NodeState
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)
from codebolt_topo.providers.docker.image import ensure_image
from codebolt_topo.providers.docker.names import CONTAINER_PORT, LABEL_NODE, WORKSPACE
from codebolt_topo.providers.docker.options import config_inside
from codebolt_topo.providers.docker.sandbox import NODE_UID
from codebolt_topo.providers.docker.settings import ContainerSettings
from codebolt_topo.providers.swarm.constraints import label_hint, missing_labels
from codebolt_topo.providers.swarm.engine import SwarmEngine
from codebolt_topo.providers.swarm.handle import SwarmHandle
from codebolt_topo.providers.swarm.names import SwarmNames
from codebolt_topo.providers.swarm.ready import running_task, wait_ready
from codebolt_topo.providers.swarm.relay_main import LISTEN_PORT
from codebolt_topo.providers.swarm.rules import SwarmRules
from codebolt_topo.providers.swarm.service_spec import service_options

__all__ = ["LABEL_RELAY", "LABEL_SECRET", "SwarmProvider"]

#: The secret and relay of a service, so ``discover`` can hand ``destroy`` all three.
LABEL_SECRET = "org.codebolt.secret"
LABEL_RELAY = "org.codebolt.relay"
_RELAY_COMMAND = ["python", "-m", "codebolt_topo.providers.swarm.relay_main"]

#: Per event loop, per network name (see the docker provider's ``_networks``).
_NETWORK_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _free_port() -> int:
    """A port free on this machine's loopback now; the relay keeps it across restarts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SwarmProvider(SwarmRules, Provider[SwarmHandle]):
    """Node daemons as Swarm services of the node image, on a per-topology overlay network."""

    capabilities = frozenset({"python", "container", "swarm"})

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.names = SwarmNames(context)
        self.engine = SwarmEngine()
        self._hostnames: dict[str, str] = {}

    def offers(self, spec: NodeSpec) -> tuple[frozenset[str], dict[str, str]]:
        """What the node image offers, plus what the node requires or declares: its placement
        constraints let it run only on a machine labelled with them (checked at create)."""
        offered, reasons = self.base_offers()
        return offered | frozenset(spec.capabilities) | frozenset(spec.requires), reasons

    @property
    def _networks(self) -> asyncio.Lock:
        locks = _NETWORK_LOCKS.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(self.names.network, asyncio.Lock())

    async def _check_swarm(self, sandbox: bool = False) -> None:
        problem = await asyncio.to_thread(self.engine.swarm_problem)
        if problem is None and sandbox:
            problem = await asyncio.to_thread(self.engine.sandbox_problem)
        if problem is not None:
            raise ProviderError(problem)

    async def has_room(self, spec: NodeSpec) -> bool:
        """Whether this engine manages a swarm with a ready, active machine fit for ``spec``
        (hybrid then moves on to its next entry instead of failing here)."""
        if await asyncio.to_thread(self.engine.swarm_problem) is not None:
            return False
        return missing_labels(spec, await asyncio.to_thread(self.engine.nodes)) is None

    async def create(self, launch: NodeLaunch) -> Placement[SwarmHandle]:
        spec, node = launch.spec, launch.name
        step = functools.partial(self.context.step, node)
        sandbox = ContainerSettings.of(spec).sandbox
        await self._check_swarm(sandbox)
        step("checking the image")
        image = await ensure_image(self.engine, spec, node, step)
        problem = missing_labels(spec, await asyncio.to_thread(self.engine.nodes))
        if problem is not None:
            raise ProviderError(f"node {node!r}: {problem}; hint: {label_hint(spec)}")
        await self._remove_leftovers(node)
        data = config_inside(launch.config, sandbox).model_dump_json().encode()
        digest = hashlib.sha256(data).hexdigest()
        handle: SwarmHandle = {
            "service": self.names.service(node),
            "secret": self.names.secret(node, digest),
            "relay": self.names.relay(node),
            "sandbox": sandbox,
        }
        port = spec.port or _free_port()
        try:
            step("creating the service")
            async with self._networks:
                networks = await self._ensure_networks(sandbox)
            handle["service_id"] = await self._create_service(launch, handle, image, data, networks)
            step("starting the relay")
            # The main overlay first even for a sandbox: an internal network publishes no port.
            relay_networks = [self.names.network, self.names.sandbox_network]
            handle["relay_id"] = await self._start_relay(node, handle, image, relay_networks, port)
            step("waiting for the daemon")
            handle["swarm_node"] = await wait_ready(self.engine, handle["service_id"], port, node)
        except BaseException:
            with contextlib.suppress(ProviderError):
                await self.destroy(handle, grace=1.0)
            raise
        return Placement(handle=handle, host="127.0.0.1", port=port)

    async def _create_service(
        self, launch: NodeLaunch, handle: SwarmHandle, image: str, data: bytes, networks: list[str]
    ) -> str:
        node = launch.name
        secret_id = await asyncio.to_thread(
            self.engine.create_secret, handle["secret"], data, self.names.labels("secret", node)
        )
        labels = {
            **self.names.labels("node", node),
            LABEL_SECRET: handle["secret"],
            LABEL_RELAY: handle["relay"],
        }
        options = service_options(
            launch.spec,
            name=handle["service"],
            image=image,
            labels=labels,
            markers=self.context.markers(node),
            secret=(secret_id, handle["secret"]),
            networks=networks,
            alias=node,
        )
        return await asyncio.to_thread(self.engine.create_service, options)

    async def _start_relay(
        self, node: str, handle: SwarmHandle, image: str, networks: list[str], port: int
    ) -> str:
        """The relay: a hardened container of the node image on this machine, on the node's
        networks, its port published on loopback only and kept across restarts."""
        options = {
            "image": image,
            "entrypoint": _RELAY_COMMAND,
            "command": [handle["service"], str(CONTAINER_PORT)],
            "name": handle["relay"],
            "labels": self.names.labels("relay", node),
            "ports": {f"{LISTEN_PORT}/tcp": ("127.0.0.1", port)},
            "restart_policy": {"Name": "unless-stopped"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": True,
            "user": f"{NODE_UID}:{NODE_UID}",
            "tmpfs": {WORKSPACE: "size=1m"},  # not the image's anonymous volume
            "pids_limit": 64,
            "mem_limit": "64m",
            "detach": True,
        }
        container = await asyncio.to_thread(
            self.engine.start, options, [(n, handle["relay"]) for n in networks]
        )
        return str(container.id)

    async def logs(self, handle: SwarmHandle, *, follow: bool) -> AsyncIterator[str]:
        """The service's log (the daemon logs to stdout and stderr), wherever its tasks ran."""
        from codebolt_topo.providers.docker.logs import container_log

        async for line in container_log(self.engine, handle["service"], follow=follow):
            yield line

    async def inspect(self, handle: SwarmHandle) -> Observation:
        """Alive while the relay runs and the service exists: a task that Swarm is restarting or
        rescheduling is Swarm's to heal (heartbeats tell whether it manages)."""
        relay = await asyncio.to_thread(self.engine.attrs, str(handle.get("relay_id", "")))
        if relay is None or not relay.get("State", {}).get("Running"):
            return Observation(alive=False, reason=f"relay container {handle['relay']} is gone")
        try:
            service = await asyncio.to_thread(self.engine.service, handle["service"])
        except ProviderError as error:
            return Observation(alive=False, reason=str(error))
        if service is None or service.get("ID") != handle.get("service_id"):
            return Observation(
                alive=False, reason=f"service {handle['service']} was removed out of band"
            )
        return Observation(alive=True, where=await self._where(handle))

    async def _where(self, handle: SwarmHandle) -> str:
        """The swarm node whose task runs the node now, or what Swarm is doing instead."""
        tasks = await asyncio.to_thread(self.engine.tasks, str(handle.get("service_id", "")))
        task = running_task(tasks)
        if task is None:
            state = tasks[0].get("Status", {}).get("State", "unknown") if tasks else "none"
            return f"(task {state})"
        node_id = str(task.get("NodeID", ""))
        if node_id not in self._hostnames:  # machines keep their names: asked once each
            self._hostnames[node_id] = await asyncio.to_thread(self.engine.node_hostname, node_id)
        return self._hostnames[node_id]

    async def destroy(self, handle: SwarmHandle, *, grace: float = 5.0) -> None:
        await asyncio.to_thread(self.engine.remove_relay, handle.get("relay_id") or handle["relay"])
        if await asyncio.to_thread(self.engine.swarm_problem) is not None:
            return  # no swarm here (left since): its services and secrets went with it
        await asyncio.to_thread(self.engine.remove_service, handle["service"])
        # Its task containers go on each machine's own time; the networks cannot go before.
        await asyncio.to_thread(self.engine.wait_tasks_gone, handle.get("service_id", ""))
        await asyncio.to_thread(self.engine.remove_secret, handle["secret"])
        async with self._networks:
            in_use = await self._networks_in_use()
            await asyncio.to_thread(
                self.engine.remove_overlays_if_unused,
                self.names.directory_filter("network"),
                in_use,
            )

    async def _networks_in_use(self) -> set[str]:
        """Overlays that another service of this topology still names."""
        services = await asyncio.to_thread(
            self.engine.services, self.names.directory_filter("node")
        )
        return {self.names.network, self.names.sandbox_network} if services else set()

    async def discover(self) -> list[Discovered[SwarmHandle]]:
        """Services of this topology in this directory, whatever their lineage, with the secret
        and relay their labels name: ``destroy`` removes all three. Outside a swarm (as a
        manager) there is nothing to find."""
        if await asyncio.to_thread(self.engine.swarm_problem) is not None:
            return []
        services = await asyncio.to_thread(
            self.engine.services, self.names.directory_filter("node")
        )
        found = []
        for service in services:
            labels = service.get("Spec", {}).get("Labels") or {}
            handle: SwarmHandle = {
                "service": str(service.get("Spec", {}).get("Name", "")),
                "service_id": str(service.get("ID", "")),
                "secret": labels.get(LABEL_SECRET, ""),
                "relay": labels.get(LABEL_RELAY, ""),
            }
            found.append(Discovered(node=labels.get(LABEL_NODE, ""), handle=handle))
        return found

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """Services of this topology by service name on the overlay; nothing else (validate
        refuses such edges)."""
        service = str(peer.handle.get("service", ""))
        if peer.provider == self.name and service.startswith(self.names.prefix + "-"):
            return f"ws://{service}:{CONTAINER_PORT}"
        return None

    async def _remove_leftovers(self, node: str) -> None:
        """Remove a service (with its secret and relay) an interrupted run left for ``node``: it
        holds an admin token nobody knows any more, so it cannot be adopted."""
        for found in await self.discover():
            if found.node == node:
                await self.destroy(found.handle, grace=1.0)
        relays = await asyncio.to_thread(
            self.engine.containers, {"label": [f"{LABEL_NODE}={node}", "org.codebolt.kind=relay"]}
        )
        for relay in relays:
            if relay.name == self.names.relay(node):
                await asyncio.to_thread(self.engine.remove_relay, relay.id)

    async def _ensure_networks(self, sandbox: bool) -> list[str]:
        """The overlays a new service joins (both exist after this; held under the network
        lock): a sandbox only the internal one; the others both, so they reach sandbox nodes and
        the world."""
        labels = self.names.labels("network")
        for network, internal in ((self.names.network, False), (self.names.sandbox_network, True)):
            await asyncio.to_thread(self.engine.ensure_overlay, network, labels, internal=internal)
        if sandbox:
            return [self.names.sandbox_network]
        return [self.names.network, self.names.sandbox_network]
