"""The cloud-vm provider: a node daemon on a machine reachable over SSH, reached by a tunnel.

``create`` bootstraps the host once (wheelhouse → venv, :mod:`.bootstrap`), writes the
node's LaunchConfig there (0600; the admin token only as its digest), starts the daemon detached
on the host's loopback (:mod:`.remote_main`), then starts a local tunnel process
(:mod:`.tunnel_main`): the node's URL is ``wss://127.0.0.1:<tunnel port>`` and its port is never
exposed on the host's network. Its server speaks TLS with the certificate the topology issued it
(in ``launch.json``, 0600): whoever connects, through the tunnel or on the host, pins the CA.
The handle records both processes by pid *and* start time (so a
recycled pid is never taken for ours), the remote directory, and the SSH settings, since
``destroy`` gets nothing else.

``create`` reports its steps (building wheels, preparing the host, uploading and installing on
a cold host, starting the daemon, opening the tunnel) through the context's progress, and
:meth:`CloudVmProvider.logs` reads the daemon's ``node.log`` on the host (:mod:`.logs`).

A node is alive when its tunnel runs here and its daemon runs there. Hosts this topology touched
are listed in ``cloud-vm-hosts.json`` *before* anything starts on them, so ``discover`` can find
daemons whose tunnel never started (a run killed in between) by their marker files.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.state import NodeState
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)
from codebolt_topo.providers.cloud_vm.handle import CloudVmHandle, RemoteDaemon
from codebolt_topo.providers.cloud_vm.remote_main import helper_command, helper_source, start_time
from codebolt_topo.providers.cloud_vm.rules import CloudVmRules
from codebolt_topo.providers.cloud_vm.settings import CloudVmSettings, SshHost, SshSettings
from codebolt_topo.providers.cloud_vm.tunnel_main import scan_tunnels, spawn_tunnel, stop_tunnel
from codebolt_topo.providers.cloud_vm.wheelhouse import wheelhouse
from codebolt_topo.providers.processes import is_ours

if TYPE_CHECKING:
    from codebolt_topo.providers.cloud_vm.bootstrap import Bootstrapper, RemoteEnv
    from codebolt_topo.providers.cloud_vm.connect import ConnectionPool

__all__ = ["CloudVmProvider"]

HOSTS_FILE = "cloud-vm-hosts.json"


class CloudVmProvider(CloudVmRules, Provider[CloudVmHandle]):
    """Node daemons on SSH hosts the topology lists, one tunnel process per node here."""

    capabilities = frozenset({"python", f"python:{sys.version_info[0]}.{sys.version_info[1]}"})

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self._pool: ConnectionPool | None = None
        self._bootstrapper: Bootstrapper | None = None
        #: Cold/warm bootstrap seconds of the last create, for benchmarks and progress.
        self.last_bootstrap: tuple[bool, float] | None = None

    def pool(self) -> ConnectionPool:
        """The SSH connection pool (asyncssh is imported on first use only: listing providers
        or planning must not pay for it)."""
        if self._pool is None:
            from codebolt_topo.providers.cloud_vm.connect import ConnectionPool

            self._pool = ConnectionPool()
        return self._pool

    async def run(
        self,
        settings: SshSettings,
        command: str,
        *,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Run ``command`` on the host over the pooled route; its stdout."""
        from codebolt_topo.providers.cloud_vm.bootstrap import run_checked

        async with self.pool().lease(settings) as route:
            return await run_checked(route, command, input=input, timeout=timeout)

    async def close(self) -> None:
        """Close pooled SSH connections now (they also close when idle or when the loop ends)."""
        if self._pool is not None:
            await self._pool.close()

    @classmethod
    def base_offers(cls) -> tuple[frozenset[str], dict[str, str]]:
        unknown = "cloud-vm cannot probe a host before placing a node on it; declare it in the "
        return frozenset(cls.capabilities), {
            family: unknown + f"node's capabilities if the host has it ({family})"
            for family in ("gpu", "cuda", "browser", "docker")
        }

    def settings_of(self, spec: NodeSpec) -> SshSettings:
        """The node's SSH settings with local paths made absolute (relative to the topology
        file), so the handle means the same from any working directory."""
        ssh = CloudVmSettings.of(spec).ssh
        if ssh is None:
            raise ProviderError("cloud-vm: the node has no ssh settings")

        def absolute(hop: SshHost) -> dict[str, Any]:
            paths = {}
            for field in ("identity_file", "known_hosts"):
                value = getattr(hop, field)
                if value is not None:
                    paths[field] = str((self.context.base_dir / Path(value).expanduser()).resolve())
            return paths

        jumps = [hop.model_copy(update=absolute(hop)) for hop in ssh.jump]
        return ssh.model_copy(update={**absolute(ssh), "jump": jumps})

    async def create(self, launch: NodeLaunch) -> Placement[CloudVmHandle]:
        if launch.spec.workspace is not None:
            raise ProviderError(
                f"node {launch.name!r}: workspace: a cloud-vm node works in its directory on the "
                "host; remove workspace (use narrative sync to move files)"
            )
        settings = self.settings_of(launch.spec)
        step = functools.partial(self.context.step, launch.name)
        step("building wheels")
        wheels = await asyncio.to_thread(wheelhouse)
        self._remember_host(settings)
        if self._bootstrapper is None:
            from codebolt_topo.providers.cloud_vm.bootstrap import Bootstrapper

            self._bootstrapper = Bootstrapper()
        loop = asyncio.get_running_loop()
        began = loop.time()
        user = f"{settings.user}@" if settings.user else ""
        step(f"preparing {user}{settings.host}:{settings.port}")
        async with self.pool().lease(settings) as route:
            env = await self._bootstrapper.ensure(route, wheels, step)
        self.last_bootstrap = (env.cold, loop.time() - began)
        step("starting the daemon")
        remote = await self._start_remote(launch, settings, env)
        local_dir = self.context.runtime_dir / "nodes" / launch.name
        local_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        bind = launch.spec.host
        handle: CloudVmHandle = {
            "ssh": settings.model_dump(mode="json"),
            "remote": remote,
            "dir": str(local_dir),
        }
        step("opening the tunnel")
        tunnel_config = {
            "ssh": handle["ssh"],
            "remote": remote,
            "remote_host": "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind,
            "remote_port": remote["port"],
        }
        try:
            pid, started, port = await spawn_tunnel(
                local_dir, tunnel_config, self.context.markers(launch.name)
            )
        except ProviderError as error:
            await self.destroy(handle, grace=1.0)
            raise ProviderError(f"node {launch.name!r}: {error}") from None
        handle["pid"], handle["start_time"] = pid, started
        return Placement(handle=handle, host="127.0.0.1", port=port)

    async def _start_remote(
        self, launch: NodeLaunch, settings: SshSettings, env: RemoteEnv
    ) -> RemoteDaemon:
        node_dir = f"{env.nodes_dir}/{self.context.topology}-{launch.name}-{secrets.token_hex(4)}"
        config = launch.config.model_copy(
            update={"workspace": f"{node_dir}/workspace", "state_dir": node_dir}
        )
        marker = {
            "topology": self.context.topology,
            "lineage": self.context.lineage,
            "node": launch.name,
            "env": self.context.markers(launch.name),
        }
        q = shlex.quote
        await self.run(
            settings,
            f"umask 077 && mkdir -p {q(node_dir + '/workspace')}"
            f" && cat > {q(node_dir + '/launch.json')}",
            input=config.model_dump_json(indent=2),
        )
        await self.run(
            settings, f"umask 077 && cat > {q(node_dir + '/marker.json')}", input=json.dumps(marker)
        )
        try:
            output = await self.run(
                settings,
                helper_command(settings.python, "launch", node_dir, env.python),
                input=helper_source(),
            )
        except ProviderError as error:
            await self.run(settings, f"rm -rf {q(node_dir)}")
            raise ProviderError(f"node {launch.name!r}: {error}") from None
        launched = json.loads(output)
        return {
            "port": launched["port"],
            "pid": launched["pid"],
            "start_time": launched["start_time"],
            "dir": node_dir,
        }

    async def logs(self, handle: CloudVmHandle, *, follow: bool) -> AsyncIterator[str]:
        """The daemon's ``node.log`` on its host, over the pooled route (``tail -F`` when
        following)."""
        from codebolt_topo.providers.cloud_vm.logs import remote_log

        settings = SshSettings.model_validate(handle["ssh"])
        async with self.pool().lease(settings) as route:
            async for line in remote_log(
                route, f"{handle['remote']['dir']}/node.log", follow=follow
            ):
                yield line

    async def inspect(self, handle: CloudVmHandle) -> Observation:
        if "pid" not in handle or not is_ours(handle):
            return Observation(alive=False, reason=f"ssh tunnel {handle.get('pid')} is gone")
        settings = SshSettings.model_validate(handle["ssh"])
        remote = handle["remote"]
        try:
            stat = await self.run(
                settings, f"cat /proc/{int(remote['pid'])}/stat 2>/dev/null || true"
            )
        except ProviderError as error:
            return Observation(alive=False, reason=f"cannot check the daemon: {error}")
        if start_time(stat) != remote["start_time"]:
            return Observation(
                alive=False, reason=f"daemon {remote['pid']} on {settings.host} is gone"
            )
        return Observation(alive=True)

    async def destroy(self, handle: CloudVmHandle, *, grace: float = 5.0) -> None:
        settings = SshSettings.model_validate(handle["ssh"])
        remote = handle["remote"]
        failure: ProviderError | None = None
        try:
            await self.run(
                settings,
                helper_command(
                    settings.python,
                    "stop",
                    remote["dir"],
                    str(int(remote["pid"])),
                    str(remote["start_time"] if remote["start_time"] is not None else -1),
                    str(grace),
                ),
                input=helper_source(),
                timeout=grace + 30,
            )
        except ProviderError as error:
            failure = error
        await stop_tunnel(handle, grace=grace)
        if handle.get("dir"):
            shutil.rmtree(handle["dir"], ignore_errors=True)
        if failure is not None:
            raise ProviderError(f"cannot stop the daemon on {settings.host}: {failure}")

    async def discover(self) -> list[Discovered[CloudVmHandle]]:
        found: list[Discovered[CloudVmHandle]] = []
        seen: set[str] = set()
        tunnels = await asyncio.to_thread(scan_tunnels, self.context.topology, self.context.lineage)
        for pid, started, node, config in tunnels:
            handle: CloudVmHandle = {
                "pid": pid,
                "start_time": started,
                "ssh": config["ssh"],
                "remote": config["remote"],
            }
            found.append(Discovered(node=node, handle=handle))
            seen.add(json.dumps([config["ssh"], config["remote"]], sort_keys=True))
        for settings in self._hosts():
            try:
                listing = await self.run(
                    settings,
                    helper_command(
                        settings.python,
                        "list",
                        f"{settings.remote_dir}/nodes",
                        self.context.topology,
                        self.context.lineage,
                    ),
                    input=helper_source(),
                )
            except ProviderError:
                continue  # an unreachable host: its orphans wait for the next run
            ssh = settings.model_dump(mode="json")
            for entry in json.loads(listing):
                remote: RemoteDaemon = {
                    "port": entry["port"],
                    "pid": entry["pid"],
                    "start_time": entry["start_time"],
                    "dir": entry["dir"],
                }
                if json.dumps([ssh, remote], sort_keys=True) not in seen:
                    found.append(
                        Discovered(node=entry["node"], handle={"ssh": ssh, "remote": remote})
                    )
        return found

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """A cloud-vm peer on the sender's own host, on that host's loopback; one on another
        host when its daemon listens beyond loopback there (``host: 0.0.0.0``, or an address
        of that host), at its SSH host's address (or the address it binds): it serves TLS, and
        the sender pins the topology's CA and its name.

        Tunnels only run from this machine towards hosts, so a host cannot reach a daemon
        elsewhere that listens on loopback. Without the sender's state, a topology using one
        host is still unambiguous.
        """
        if peer.provider != self.name or "remote" not in peer.handle or peer.url is None:
            return None
        if sender is not None and "ssh" in sender.handle:
            same_host = sender.handle["ssh"] == peer.handle.get("ssh")
        else:
            hosts = self._hosts()
            same_host = len(hosts) == 1 and hosts[0].model_dump(mode="json") == peer.handle.get(
                "ssh"
            )
        port = int(peer.handle["remote"]["port"])
        if same_host:
            return f"{peer.scheme}://127.0.0.1:{port}"
        bound = str(peer.launch.get("host") or "127.0.0.1")
        if is_loopback(bound) or peer.pinned_ca is None:
            return None
        address = str(peer.handle["ssh"]["host"]) if bound in ("0.0.0.0", "::", "") else bound
        address = f"[{address}]" if ":" in address else address
        return f"{peer.scheme}://{address}:{port}"

    def _hosts_path(self) -> Path:
        return self.context.runtime_dir / HOSTS_FILE

    def _hosts(self) -> list[SshSettings]:
        try:
            rows = json.loads(self._hosts_path().read_text())
        except (OSError, ValueError):
            return []
        return [SshSettings.model_validate(row) for row in rows]

    def _remember_host(self, settings: SshSettings) -> None:
        if settings in self._hosts():
            return
        rows = [host.model_dump(mode="json") for host in [*self._hosts(), settings]]
        path = self._hosts_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".tmp-{os.getpid()}")
        scratch.write_text(json.dumps(rows, indent=2))
        scratch.replace(path)
