"""Blocking calls to a Docker Engine that manages a swarm, with its errors translated into ours.

Extends the docker provider's :class:`DockerEngine` (containers, networks, the SDK imported on
first use) with services, tasks, secrets and swarm nodes. The provider runs each through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.docker.engine import DockerEngine, engine_errors

__all__ = ["INIT_HINT", "SwarmEngine", "sandbox_refusal"]

INIT_HINT = (
    "run 'docker swarm init' on this machine to make it a manager (add --advertise-addr ADDRESS "
    "when it has several addresses), then join workers with the command it prints"
)
_REMOVE_RETRIES = 300
_SANDBOX_API = (1, 41)
_RETRY_PAUSE = 0.2


def sandbox_refusal(api_version: str) -> str | None:
    """Why a manager speaking ``api_version`` cannot harden a sandbox task, or None. Dropping a
    task's capabilities and limiting its processes came with API 1.41 (Docker 20.10): an older
    manager would start the task without them, so a sandbox is refused instead."""
    major, _, minor = api_version.partition(".")
    if major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= _SANDBOX_API:
        return None
    return (
        f"sandbox: this swarm manager speaks service API {api_version}, which cannot drop a "
        "task's capabilities or limit its processes (API 1.41, Docker 20.10, can); upgrade the "
        "manager or remove sandbox: true"
    )


class SwarmEngine(DockerEngine):
    """The engine named by the environment, which must be a swarm manager."""

    @engine_errors
    def swarm_problem(self) -> str | None:
        """Why services cannot be created through this engine, or None."""
        swarm = self.client.info().get("Swarm") or {}
        state = swarm.get("LocalNodeState", "inactive")
        if state != "active":
            return f"this Docker Engine is not part of a swarm (state: {state}); {INIT_HINT}"
        if not swarm.get("ControlAvailable"):
            return (
                "this Docker Engine is a swarm worker, not a manager; point DOCKER_HOST at a "
                "manager of the swarm"
            )
        return None

    @engine_errors
    def sandbox_problem(self) -> str | None:
        """Why this engine's service API cannot harden a sandbox task, or None."""
        return sandbox_refusal(str(self.client.version().get("ApiVersion", "0")))

    @engine_errors
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.client.api.nodes())

    @engine_errors
    def node_hostname(self, node_id: str) -> str:
        import docker.errors

        try:
            node = self.client.api.inspect_node(node_id)
        except docker.errors.NotFound:
            return node_id[:12]
        return str(node.get("Description", {}).get("Hostname") or node_id[:12])

    @engine_errors
    def ensure_overlay(self, name: str, labels: dict[str, str], *, internal: bool) -> str:
        """The id of attachable overlay ``name`` with our labels, adopted or created. Its MTU
        leaves room for VXLAN's 50 bytes on hosts whose own links are below 1500."""
        for network in self.client.networks.list(names=[name]):
            if network.name == name and (network.attrs.get("Labels") or {}) == labels:
                return str(network.id)
        network = self.client.networks.create(
            name,
            driver="overlay",
            attachable=True,
            internal=internal,
            labels=labels,
            options={"com.docker.network.driver.mtu": str(self._overlay_mtu())},
            check_duplicate=True,
        )
        return str(network.id)

    def _overlay_mtu(self) -> int:
        bridge = self.client.networks.get("bridge").attrs.get("Options") or {}
        return int(bridge.get("com.docker.network.driver.mtu", 1500)) - 50

    @engine_errors
    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        """A new secret ``name`` holding ``data``; one of that name left by an earlier run of
        this node (the name carries the data's digest) is replaced."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_secret(name)
        created = self.client.api.create_secret(name, data, labels=labels)
        return str(created["ID"])

    @engine_errors
    def create_service(self, options: dict[str, Any]) -> str:
        return str(self.client.services.create(**options).id)

    @engine_errors
    def service(self, service: str) -> dict[str, Any] | None:
        """``docker service inspect``, or None when it is gone."""
        import docker.errors

        try:
            return dict(self.client.api.inspect_service(service))
        except docker.errors.NotFound:
            return None

    @engine_errors
    def services(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.client.api.services(filters=filters))

    @engine_errors
    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        """The service's tasks, newest first."""
        tasks = self.client.api.tasks(filters={"service": service_id})
        return sorted(tasks, key=lambda task: str(task.get("CreatedAt", "")), reverse=True)

    @engine_errors
    def wait_tasks_gone(self, service_id: str, timeout: float = 60.0) -> None:
        """Wait until no container of a removed service's tasks is left on this machine (the
        other machines' agents remove theirs on their own time)."""
        if not service_id:
            return
        filters = {"label": f"com.docker.swarm.service.id={service_id}"}
        deadline = time.monotonic() + timeout
        while self.client.api.containers(all=True, filters=filters):
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"service {service_id[:12]}: task containers still here after {timeout:.0f} s"
                )
            time.sleep(_RETRY_PAUSE)

    @engine_errors
    def log_stream(self, container_id: str, *, follow: bool) -> Any:
        """The log of *service* ``container_id`` (every task's, gathered by the manager from the
        machines that ran them), as the docker provider's log reader takes a container's: a
        stream of byte chunks whose ``close()`` ends it. The SDK's ``service_logs`` returns a
        bare generator that nothing can interrupt; this is the same request, cancellable."""
        from docker.types.daemon import CancellableStream

        api = self.client.api
        params: dict[str, Any] = {"details": False, "follow": follow, "stdout": True}
        params.update(stderr=True, tail="all")
        response = api._get(
            api._url("/services/{0}/logs", container_id), params=params, stream=True
        )
        return CancellableStream(api._get_result_tty(True, response, False), response)

    @engine_errors
    def secrets(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.client.api.secrets(filters=filters))

    @engine_errors
    def remove_service(self, service: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_service(service)

    @engine_errors
    def remove_secret(self, name: str) -> None:
        """Remove secret ``name``; a removed service lets go of it within moments."""
        import docker.errors

        for attempt in range(_REMOVE_RETRIES):
            try:
                self.client.api.remove_secret(name)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as error:
                if "in use" not in str(error) or attempt + 1 == _REMOVE_RETRIES:
                    raise
                time.sleep(_RETRY_PAUSE)
                continue
            return

    @engine_errors
    def remove_relay(self, container: str) -> None:
        """Remove a relay container at once (it holds nothing worth a graceful stop)."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(container, force=True, v=True)

    @engine_errors
    def remove_overlays_if_unused(self, filters: dict[str, Any], in_use: set[str]) -> None:
        """Remove every matching network not in ``in_use``, and return once none is listed any
        more. A removed service's tasks let go of a network within moments, and a remove that
        answered (even "not found") may still leave the network listed for a while, the
        manager's copy of an attachable overlay going after the swarm's: both are retried
        until the listing is clear, so a destroy that returns leaves nothing behind."""
        import docker.errors

        for attempt in range(_REMOVE_RETRIES):
            left = [n for n in self.client.networks.list(filters=filters) if n.name not in in_use]
            if not left:
                return
            error: docker.errors.APIError | None = None
            for network in left:
                try:
                    network.remove()
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as refused:
                    error = refused
            if attempt + 1 == _REMOVE_RETRIES:
                names = ", ".join(sorted(str(n.name) for n in left))
                why = f": {error.explanation}" if error is not None else ""
                raise ProviderError(f"network {names} is still in use{why}")
            time.sleep(_RETRY_PAUSE)
