"""The local provider: each node is a daemon process on this machine.

The daemon is started detached (:func:`~codebolt_topo.providers.processes.spawn_detached`: a new
session, so it outlives the CLI; output appended to ``node.log``) and writes ``{"port": N,
"pid": P}`` on its ready pipe once it listens. The handle records the pid *and* the process start
time, so a recycled pid is never mistaken for our node; environment markers let a later run find
the daemons an interrupted one left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from functools import partial
from pathlib import Path

from codebolt_topo.capabilities import detected_here
from codebolt_topo.node.clean_stop import stopped_cleanly
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
)
from codebolt_topo.providers.leftovers import CHILDREN_DIR, reap_children
from codebolt_topo.providers.local.handle import LocalHandle
from codebolt_topo.providers.local.rules import LocalRules
from codebolt_topo.providers.local.zygote import fork_daemon
from codebolt_topo.providers.processes import (
    READY_FD,
    is_ours,
    scan_marked,
    spawn_detached,
    stop_group,
    write_private,
)
from codebolt_topo.wire.config import FenceSettings

__all__ = ["LocalProvider"]

READY_TIMEOUT = 20.0


class LocalProvider(LocalRules, Provider[LocalHandle]):
    """Node daemons as processes on this machine, one free port each."""

    capabilities = frozenset({"python", "local"})

    @classmethod
    def base_offers(cls) -> tuple[frozenset[str], dict[str, str]]:
        detection = detected_here()  # local nodes run on this very machine
        return detection.found | cls.capabilities, detection.absent

    def node_dir(self, node: str) -> Path:
        return self.context.runtime_dir / "nodes" / node

    async def create(self, launch: NodeLaunch) -> Placement[LocalHandle]:
        node_dir = self.node_dir(launch.name)
        node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        Path(launch.config.workspace).mkdir(parents=True, exist_ok=True)
        config_path = node_dir / "launch.json"
        config = launch.config.model_copy(update={"fence": self._fence(node_dir, config_path)})
        write_private(config_path, config.model_dump_json(indent=2).encode())
        env = {**os.environ, **self.context.markers(launch.name)}
        argv = [
            sys.executable,
            "-m",
            "codebolt_topo.node",
            "--config",
            str(config_path),
            "--ready-fd",
            str(READY_FD),
        ]
        spawned = await spawn_detached(
            argv,
            env,
            node_dir / "node.log",
            what=f"node {launch.name!r}: daemon",
            timeout=READY_TIMEOUT,
            forker=partial(fork_daemon, argv, env, config_path),
        )
        handle: LocalHandle = {**spawned.handle, "dir": str(node_dir)}
        info = json.loads(spawned.ready)
        host = launch.config.host
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return Placement(handle=handle, host=connect_host, port=int(info["port"]))

    async def discover(self) -> list[Discovered[LocalHandle]]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[Discovered[LocalHandle]]:
        """Node daemons on this machine carrying this topology's and lineage's markers (a job
        started by a node inherits them: only the daemon's command line counts) and started
        from a launch config of this provider's: a cloud-vm daemon whose SSH host is this very
        machine carries the same markers, and is not a local orphan."""
        markers = {
            "CODEBOLT_TOPOLOGY": self.context.topology,
            "CODEBOLT_LINEAGE": self.context.lineage,
        }
        nodes_dir = os.fsencode(self.context.runtime_dir / "nodes") + b"/"

        def ours(argv: list[bytes]) -> bool:
            return b"codebolt_topo.node" in argv and any(a.startswith(nodes_dir) for a in argv)

        return [
            Discovered(
                node=process.environ["CODEBOLT_NODE"],
                handle={"pid": process.pid, "start_time": process.start_time},
            )
            for process in scan_marked(markers, ours)
            if "CODEBOLT_NODE" in process.environ
        ]

    async def inspect(self, handle: LocalHandle) -> Observation:
        if is_ours(handle):
            return Observation(alive=True)
        if stopped_cleanly(handle.get("dir"), int(handle["pid"])):
            return Observation(
                alive=False, reason=f"process {handle['pid']} stopped on request", clean_exit=True
            )
        return Observation(alive=False, reason=f"process {handle['pid']} is gone")

    async def destroy(self, handle: LocalHandle, *, grace: float = 5.0) -> None:
        await stop_group(handle, grace=grace)
        node_dir = handle.get("dir")
        if node_dir:
            if (Path(node_dir) / CHILDREN_DIR).is_dir():
                # A parent node closes its child topologies as it stops; one that died could not.
                await reap_children(str(node_dir))
            shutil.rmtree(node_dir, ignore_errors=True)

    def _fence(self, node_dir: Path, config_path: Path) -> FenceSettings:
        """The state directory (every node's tokens) is out of the jobs' reach; the node's own
        directory is not, but for its launch config (see node/security/isolation.py)."""
        return FenceSettings(
            hidden=str(self.context.runtime_dir.parent),
            kept=[str(node_dir)],
            blanked=[str(config_path)],
        )
