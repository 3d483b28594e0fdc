"""The per-node tunnel program of cloud-vm (``python -m
codebolt_topo.providers.cloud_vm.tunnel_main``).

A cloud-vm node's daemon listens on the host's loopback only, so its port is never exposed; this
process, one per node on the orchestrator's machine, forwards ``127.0.0.1:<local port>`` to it
over SSH (see :mod:`.forward`). It must outlive the CLI that started it (other local nodes and
later ``codebolt exec`` calls reach the node through it), so it is started like a local node
daemon: ``posix_spawn`` in a new session, output to ``tunnel.log``, ``{"port", "pid"}`` written
on fd 3 once the first SSH connection is up and the port listens, and the topology's markers in
its environment so a later run can find it (:func:`scan_tunnels`).

Its config file (0600, in the node's local directory) holds the SSH settings and the node's
whole handle, so a tunnel found by its markers tells where its remote daemon is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.cloud_vm.settings import SshSettings
from codebolt_topo.providers.processes import (
    READY_FD,
    helper_main,
    report_ready,
    scan_marked,
    spawn_detached,
    stop_group,
    write_private,
)

__all__ = ["main", "scan_tunnels", "serve", "spawn_tunnel", "stop_tunnel"]

log = logging.getLogger("codebolt_topo.ssh_tunnel")
MODULE = "codebolt_topo.providers.cloud_vm.tunnel_main"
READY_TIMEOUT = 30.0


async def serve(config: dict[str, Any], ready_fd: int | None) -> int:
    """Forward until SIGTERM or SIGINT; 1 if the first SSH connection fails."""
    from codebolt_topo.providers.cloud_vm.forward import Forwarder  # asyncssh: only in the process

    settings = SshSettings.model_validate(config["ssh"])
    forwarder = Forwarder(settings, config["remote_host"], int(config["remote_port"]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    first: asyncio.Future[None] = loop.create_future()
    keeper = asyncio.create_task(forwarder.maintain(stop, first))
    try:
        await first
    except ProviderError as error:
        log.error("%s", error)
        await keeper
        return 1
    server = await asyncio.start_server(
        forwarder.serve_client,
        config.get("listen_host", "127.0.0.1"),
        int(config.get("listen_port", 0)),
    )
    port = int(server.sockets[0].getsockname()[1])
    log.info(
        "forwarding 127.0.0.1:%d -> %s:%s:%d (pid %d)",
        port,
        settings.host,
        config["remote_host"],
        config["remote_port"],
        os.getpid(),
    )
    report_ready(ready_fd, port)
    await stop.wait()
    server.close()
    await forwarder.close()
    await server.wait_closed()
    await keeper
    log.info("tunnel stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    return helper_main(
        argv,
        module=MODULE,
        description="Forward a local port to a cloud-vm node.",
        serve=serve,
        quiet=("asyncssh",),
    )


def scan_tunnels(topology: str, lineage: str) -> list[tuple[int, int, str, dict[str, Any]]]:
    """Tunnel processes on this machine carrying these markers: (pid, start time, node,
    config)."""
    found = []
    markers = {"CODEBOLT_TOPOLOGY": topology, "CODEBOLT_LINEAGE": lineage}
    for process in scan_marked(markers, lambda argv: MODULE.encode() in argv):
        try:
            config_path = process.cmdline[process.cmdline.index(b"--config") + 1].decode()
            config = json.loads(Path(config_path).read_text())
        except (OSError, ValueError, IndexError):
            continue
        node = process.environ.get("CODEBOLT_NODE")
        if node is not None:
            found.append((process.pid, process.start_time, node, config))
    return found


async def spawn_tunnel(
    node_dir: Path, config: dict[str, Any], markers: dict[str, str]
) -> tuple[int, int | None, int]:
    """Start a tunnel process for ``config``; return its (pid, start time, local port) once it
    forwards. Raises :class:`ProviderError` with the tail of its log if it cannot."""
    config_path = node_dir / "tunnel.json"
    write_private(config_path, json.dumps(config, indent=2).encode())
    argv = [sys.executable, "-m", MODULE, "--config", str(config_path), "--ready-fd", str(READY_FD)]
    spawned = await spawn_detached(
        argv,
        {**os.environ, **markers},
        node_dir / "tunnel.log",
        what="ssh tunnel",
        timeout=READY_TIMEOUT,
    )
    return spawned.pid, spawned.start_time, int(json.loads(spawned.ready)["port"])


async def stop_tunnel(handle: Mapping[str, Any], *, grace: float) -> None:
    """SIGTERM the tunnel's group, SIGKILL after ``grace`` s; nothing if it is gone."""
    await stop_group(handle, grace=grace)


if __name__ == "__main__":
    sys.exit(main())
