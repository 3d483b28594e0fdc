"""Blocking calls to the Docker Engine, with its errors translated into ours.

The Docker SDK is synchronous (requests over the engine's socket); the provider runs every
function here through ``asyncio.to_thread`` so the event loop, which carries other nodes' starts
and streams, never waits on the engine. The SDK is imported on first use: listing providers or
running a local topology never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from codebolt_topo.errors import ProviderError

__all__ = ["DockerEngine", "engine_errors", "in_thread"]

_ENDPOINT_RETRIES = 30
#: Threads for the provider's engine calls. Not asyncio's default executor: on a two-core
#: machine that has six threads, and N containers starting (each ``start`` blocks for a second
#: or more) plus their readiness polls would queue behind each other there, which put the
#: starts of a 10-node apply in series. The engine does the work; these threads only wait.
THREADS = 64
_THREADS = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="docker-engine")

P = ParamSpec("P")
R = TypeVar("R")


def engine_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn SDK and connection errors into :class:`ProviderError` with the engine's own words."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import docker.errors
        import requests.exceptions

        try:
            return function(*args, **kwargs)
        except docker.errors.APIError as error:
            message = error.explanation or str(error)
            raise ProviderError(f"docker: {message}") from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise ProviderError(f"cannot reach the Docker Engine: {error}") from None

    return wrapper


async def in_thread(function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``asyncio.to_thread`` on the provider's own threads (see ``_THREADS``)."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_THREADS, call)


class DockerEngine:
    """One connection to the engine named by the environment (DOCKER_HOST, or the local socket)."""

    def __init__(self) -> None:
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            # As many pooled connections as threads: each starting node follows its log.
            self._client = docker.from_env(timeout=120, max_pool_size=THREADS)
        return self._client

    @engine_errors
    def has_image(self, image: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    @engine_errors
    def runtimes(self) -> set[str]:
        return set(self.client.info().get("Runtimes", {}))

    @engine_errors
    def ensure_network(self, name: str, labels: dict[str, str], *, internal: bool) -> str:
        """The id of network ``name`` with our labels, adopted when it exists, created otherwise."""
        for network in self.client.networks.list(names=[name]):
            if network.name == name and (network.attrs.get("Labels") or {}) == labels:
                return str(network.id)
        network = self.client.networks.create(
            name, driver="bridge", internal=internal, labels=labels, check_duplicate=True
        )
        return str(network.id)

    @engine_errors
    def network_exists(self, name: str) -> bool:
        return any(n.name == name for n in self.client.networks.list(names=[name]))

    @engine_errors
    def connect(self, network: str, container: str, alias: str) -> None:
        """Attach ``container`` to ``network`` under ``alias``; already attached is fine."""
        net = self.client.networks.get(network)
        attached = net.attrs.get("Containers") or {}
        if any(key.startswith(container) for key in attached):
            return
        try:
            net.connect(container, aliases=[alias])
        except Exception as error:  # the engine says "already exists" in several ways
            if "already exists" not in str(error):
                raise

    @engine_errors
    def containers(self, filters: dict[str, Any]) -> list[Any]:
        return list(self.client.containers.list(all=True, filters=filters))

    @engine_errors
    def ensure_volume(self, name: str, labels: dict[str, str]) -> bool:
        """Create volume ``name`` if missing; True when it is ours to remove: created now, or
        created by an interrupted run (same labels, lineage aside). A user's volume is not."""
        import docker.errors

        try:
            volume = self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels=labels)
            return True
        found = volume.attrs.get("Labels") or {}
        return all(found.get(k) == v for k, v in labels.items() if k != "org.codebolt.lineage")

    @engine_errors
    def create(self, options: dict[str, Any], networks: list[tuple[str, str]]) -> Any:
        """Create a container attached to each ``(network, alias)``, not started yet, so the
        daemon never runs without the network its peers use. The provider calls this under its
        network lock (which networks to join is decided there); :meth:`start` runs outside it."""
        (first, alias), *others = networks
        client = self.client
        options = {
            **options,
            "networking_config": client.api.create_networking_config(
                {first: client.api.create_endpoint_config(aliases=[alias])}
            ),
        }
        container = client.containers.create(network=first, **options)
        try:
            for network, extra_alias in others:
                client.networks.get(network).connect(container, aliases=[extra_alias])
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        return container

    def start(self, options: dict[str, Any], networks: list[tuple[str, str]]) -> Any:
        """:meth:`create` and :meth:`start_created` in one (the swarm provider's relays)."""
        return self.start_created(self.create(options, networks))

    @engine_errors
    def start_created(self, container: Any) -> Any:
        """Start a container :meth:`create` made; removed again when it cannot start."""
        try:
            container.start()
            container.reload()
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        return container

    @engine_errors
    def run_in_namespace_of(
        self, container_id: str, image: str, command: list[str], labels: dict[str, str]
    ) -> tuple[int, str]:
        """Run ``command`` as root with ``NET_ADMIN`` in a throwaway container sharing the
        network namespace of ``container_id`` (and nothing else); its exit code and output."""
        helper = self.client.containers.run(
            image,
            command,
            entrypoint=[],
            user="0:0",
            network_mode=f"container:{container_id}",
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN", "NET_RAW"],
            security_opt=["no-new-privileges:true"],
            labels=labels,
            detach=True,
        )
        try:
            result = helper.wait(timeout=60)
            output = bytes(helper.logs(stdout=True, stderr=True)).decode(errors="replace")
        finally:
            with contextlib.suppress(Exception):
                # v: the image declares VOLUME /workspace, so the helper got an anonymous
                # volume of its own; without it each sandbox start left one behind.
                helper.remove(force=True, v=True)
        return int(result.get("StatusCode", 1)), output

    @engine_errors
    def attrs(self, container_id: str) -> dict[str, Any] | None:
        """``docker inspect`` of a container, or None when it is gone."""
        import docker.errors

        try:
            return dict(self.client.api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None

    @engine_errors
    def logs(self, container_id: str, tail: int | str = "all") -> str:
        import docker.errors

        try:
            raw = self.client.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except docker.errors.NotFound:
            return ""
        return bytes(raw).decode(errors="replace")

    @engine_errors
    def log_stream(self, container_id: str, *, follow: bool) -> Any:
        """The container's log (stdout and stderr) as the SDK's stream of byte chunks, from its
        first line; ``close()`` ends it."""
        import docker.errors

        try:
            return self.client.api.logs(
                container_id, stdout=True, stderr=True, stream=True, follow=follow
            )
        except docker.errors.NotFound:
            raise ProviderError(
                f"container {container_id[:12]} is gone, and its log with it"
            ) from None

    @engine_errors
    def remove_container(self, container_id: str, grace: float) -> None:
        """Stop (SIGTERM, SIGKILL after ``grace`` s) and remove; gone already is fine."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            container = self.client.containers.get(container_id)
            if container.status == "running":
                with contextlib.suppress(docker.errors.APIError):
                    container.stop(timeout=max(1, round(grace)))
            container.remove(force=True, v=False)

    @engine_errors
    def remove_volumes(self, names: list[str]) -> None:
        import docker.errors

        for name in names:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)

    @engine_errors
    def remove_where(self, filters: dict[str, Any], label: str, prefix: str) -> int:
        """Remove every container, then network and volume, matching ``filters`` whose
        ``label`` starts with ``prefix``; how many containers went."""
        import docker.errors

        def under(item: Any) -> bool:
            labels = getattr(item, "labels", None) or item.attrs.get("Labels") or {}
            return str(labels.get(label, "")).startswith(prefix)

        client = self.client
        containers = [c for c in client.containers.list(all=True, filters=filters) if under(c)]
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=False)
        for network in client.networks.list(filters=filters):
            if under(network):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
        for volume in client.volumes.list(filters=filters):
            if under(volume):
                with contextlib.suppress(docker.errors.NotFound):
                    volume.remove(force=True)
        return len(containers)

    @engine_errors
    def remove_networks_if_unused(self, filters: dict[str, Any]) -> None:
        """Remove every matching network no container is attached to any more."""
        import docker.errors

        for network in self.client.networks.list(filters=filters):
            # The engine lists a removed container's endpoint for a moment after the container
            # is gone; give it that moment rather than leave the network behind.
            for attempt in range(_ENDPOINT_RETRIES):
                with contextlib.suppress(docker.errors.NotFound):
                    network.reload()
                    if network.attrs.get("Containers"):
                        break
                    try:
                        network.remove()
                    except docker.errors.APIError as error:
                        if "active endpoints" not in str(error) or attempt + 1 == _ENDPOINT_RETRIES:
                            raise
                        time.sleep(0.1)
                        continue
                break
