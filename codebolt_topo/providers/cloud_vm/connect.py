"""Opening SSH connections for cloud-vm nodes, through jump hosts, with host keys checked.

Every hop of a route (``jump`` hosts, then the target) is one asyncssh connection tunnelled
through the previous one, each with its own key, user and host-key policy: asyncssh's own
``tunnel="a,b"`` string form would give every jump the defaults instead. Host keys are always
checked (a known_hosts file, ``~/.ssh/known_hosts`` by default, or a pinned key) unless the hop
says ``insecure_host_key: true``. ``~/.ssh/config`` is not read: the topology file alone decides
where a node runs, so a plan means the same on every machine.

:class:`ConnectionPool` keeps one connection per route open between calls (an SSH handshake
costs tens of milliseconds; ``inspect`` runs on every reconciler pass). Each pooled route has a
keeper task that closes it after it has been idle a while or when its event loop shuts down
(``asyncio.run`` cancels leftover tasks), so no connection outlives its loop unclosed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.cloud_vm.settings import SshHost, SshSettings

__all__ = ["ConnectionPool", "SshRoute", "connect_route", "describe", "ssh_error"]

CONNECT_TIMEOUT = 15.0
#: Probes that notice a dead peer (a VM gone, a cable pulled) within about 45 s.
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3


def describe(hop: SshHost) -> str:
    """``user@host:port`` as ssh users write it, for messages."""
    user = f"{hop.user}@" if hop.user else ""
    return f"{user}{hop.host}:{hop.port}"


def ssh_error(settings: SshSettings, error: BaseException) -> ProviderError:
    """Translate an asyncssh or socket error into ours, naming the route."""
    hops = " -> ".join(describe(hop) for hop in [*settings.jump, settings])
    text = str(error) or type(error).__name__
    return ProviderError(f"ssh {hops}: {text}")


def _known_hosts(hop: SshHost) -> Any:
    """The ``known_hosts`` argument of asyncssh for ``hop``'s trust policy."""
    if hop.insecure_host_key:
        return None  # asyncssh: no host key check, asked for explicitly in the topology
    if hop.host_key:
        try:
            key = asyncssh.import_public_key(hop.host_key)
        except (asyncssh.KeyImportError, ValueError) as error:
            raise ProviderError(f"ssh {describe(hop)}: host_key: {error}") from None
        return ([key], [], [])
    path = Path(hop.known_hosts or "~/.ssh/known_hosts").expanduser()
    if not path.is_file():
        raise ProviderError(
            f"ssh {describe(hop)}: known_hosts file {path} does not exist; add the host's key "
            "there (ssh-keyscan), pin it with host_key, or set insecure_host_key for a lab"
        )
    return str(path)


def _options(hop: SshHost) -> dict[str, Any]:
    options: dict[str, Any] = {
        "port": hop.port,
        "known_hosts": _known_hosts(hop),
        "config": None,
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
    }
    if hop.user:
        options["username"] = hop.user
    if hop.identity_file:
        options["client_keys"] = [str(Path(hop.identity_file).expanduser())]
        options["agent_path"] = None
    return options


class SshRoute:
    """The connections of one route, target last; closing it closes every hop."""

    def __init__(self, settings: SshSettings, connections: list[asyncssh.SSHClientConnection]):
        self.settings = settings
        self.connections = connections

    @property
    def target(self) -> asyncssh.SSHClientConnection:
        return self.connections[-1]

    def is_closing(self) -> bool:
        return any(conn.is_closed() for conn in self.connections)

    async def wait_closed(self) -> None:
        """Return once any hop of the route has closed (the route is then unusable)."""
        waits = [asyncio.ensure_future(conn.wait_closed()) for conn in self.connections]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def close(self) -> None:
        for conn in reversed(self.connections):
            conn.close()
            with contextlib.suppress(OSError, asyncssh.Error):
                await conn.wait_closed()


async def connect_route(settings: SshSettings) -> SshRoute:
    """Connect through every jump host to the target; raises :class:`ProviderError`."""
    connections: list[asyncssh.SSHClientConnection] = []
    try:
        for hop in [*settings.jump, settings]:
            tunnel = connections[-1] if connections else ()
            connections.append(await asyncssh.connect(hop.host, tunnel=tunnel, **_options(hop)))
    except (OSError, asyncssh.Error, TimeoutError) as error:
        await SshRoute(settings, connections).close()
        raise ssh_error(settings, error) from None
    except BaseException:
        await SshRoute(settings, connections).close()
        raise
    return SshRoute(settings, connections)


class ConnectionPool:
    """One open route per distinct settings, closed when idle or when its loop shuts down."""

    def __init__(self, idle: float = 60.0) -> None:
        self.idle = idle
        self._routes: dict[str, tuple[SshRoute, asyncio.Task[None]]] = {}
        self._used: dict[str, float] = {}
        self._busy: dict[str, int] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def lease(self, settings: SshSettings) -> AsyncIterator[SshRoute]:
        """An open route for ``settings`` that stays open at least until the block ends
        (a long remote command, such as an install, is not cut by the idle timer)."""
        route = await self.get(settings)
        key = settings.model_dump_json()
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield route
        finally:
            self._busy[key] -= 1
            self._used[key] = time.monotonic()

    async def get(self, settings: SshSettings) -> SshRoute:
        """An open route for ``settings``, reusing a pooled one that is still up."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Routes and locks belong to one loop; a new asyncio.run starts a fresh pool (the
            # old loop's keepers closed their routes when it shut down).
            self._loop, self._routes, self._connecting, self._busy = loop, {}, {}, {}
        key = settings.model_dump_json()
        lock = self._connecting.setdefault(key, asyncio.Lock())
        async with lock:
            self._used[key] = time.monotonic()
            pooled = self._routes.get(key)
            if pooled is not None and not pooled[0].is_closing() and not pooled[1].done():
                return pooled[0]
            route = await connect_route(settings)
            keeper = asyncio.create_task(self._keep(key, route), name=f"ssh-pool {key[:40]}")
            self._routes[key] = (route, keeper)
            return route

    async def _keep(self, key: str, route: SshRoute) -> None:
        try:
            while not route.is_closing():
                left = self._used.get(key, 0.0) + self.idle - time.monotonic()
                if self._busy.get(key, 0):
                    left = self.idle
                elif left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(route.wait_closed(), left)
        finally:
            if self._routes.get(key, (None,))[0] is route:
                del self._routes[key]
            await route.close()

    async def close(self) -> None:
        """Close every pooled route now."""
        keepers = [keeper for _, keeper in self._routes.values()]
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
