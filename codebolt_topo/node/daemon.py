"""``run_daemon``: one node's process from config file to clean exit.

Sequence: read and check the LaunchConfig file (private mode, valid, loopback unless an admin
token guards it), bind, report ``{"port": N, "pid": P}`` on the ready fd, serve until SIGTERM or
SIGINT, then cancel every job (killing its process group), close connections and links, return 0.
Configuration problems are logged as one line and return 2; a failure to bind returns 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import sys
from pathlib import Path

from pydantic import ValidationError

from codebolt_topo.errors import ConfigError
from codebolt_topo.netaddr import is_loopback
from codebolt_topo.node.clean_stop import record_clean_stop
from codebolt_topo.node.core import NodeCore
from codebolt_topo.node.jobs.reaper import job_reaper
from codebolt_topo.node.logs import install_log_limits
from codebolt_topo.node.security.isolation import Fence, isolate
from codebolt_topo.node.security.limits import raise_descriptor_limit
from codebolt_topo.node.server import start_server
from codebolt_topo.readiness import report_ready
from codebolt_topo.wire.config import LaunchConfig

__all__ = ["load_launch_config", "run_daemon"]

log = logging.getLogger("codebolt_topo.node")


def load_launch_config(path: Path) -> LaunchConfig:
    """Read a LaunchConfig file, refusing one that group or others may access (it holds the
    tokens this node presents to its peers)."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: mode {stat.S_IMODE(mode):04o} lets others read the node "
                "config; it must be private (chmod 600)"
            )
        config = LaunchConfig.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read node config: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: invalid node config: {where}: {first['msg']}") from None
    if not is_loopback(config.host) and len(config.admin_token_digest) != 64:
        raise ConfigError(f"{path}: refusing to listen on {config.host!r} without an admin token")
    if not Path(config.workspace).is_dir():
        raise ConfigError(f"{path}: workspace {config.workspace!r} is not a directory")
    return config


def run_daemon(config_path: Path, ready_fd: int | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; returns the process exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        config = load_launch_config(config_path)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if config.fence is not None:  # before any thread exists (a user namespace needs that)
        fence = config.fence
        how = isolate(
            Fence(
                hidden=Path(fence.hidden),
                kept=tuple(map(Path, fence.kept)),
                blanked=tuple(map(Path, fence.blanked)),
            )
        )
        log.info("node %s: %s hidden from its jobs (%s)", config.node, fence.hidden, how)
    return asyncio.run(_serve(config, ready_fd))


async def _serve(config: LaunchConfig, ready_fd: int | None) -> int:
    reaper = job_reaper()
    reaper.enable()  # before any job: every process a job starts stays in our subtree
    raise_descriptor_limit()
    install_log_limits()  # a peer repeating one bad request must not fill the disk
    core = NodeCore(config)
    if config.runtime.generation or config.runtime != core.runtime:
        reply = await core.configure(config.runtime.model_dump())
        if reply["t"] == "error":
            log.error("initial runtime config: %s", reply["message"])
            return 2
    try:
        server = await start_server(core, config.host, config.port)
    except OSError as exc:
        log.error(
            "node %s cannot listen on %s:%d: %s",
            config.node,
            config.host,
            config.port,
            exc.strerror or exc,
        )
        return 1
    port = next(iter(server.sockets)).getsockname()[1]
    log.info(
        "node %s of %s listening on %s:%d (pid %d)",
        config.node,
        config.topology,
        config.host,
        port,
        os.getpid(),
    )
    # Handlers first, readiness second: a stop signal sent the moment we report ready must
    # still take the graceful path.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    report_ready(ready_fd, port)
    await stop.wait()
    log.info("node %s stopping", config.node)
    server.server.close()  # stop accepting; open connections stay to carry the jobs' exits
    await core.close()
    reaper.disable()
    server.close()
    await server.wait_closed()
    record_clean_stop(config.state_dir)
    log.info("node %s stopped", config.node)
    return 0
