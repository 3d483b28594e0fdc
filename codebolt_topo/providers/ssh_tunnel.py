"""The per-node tunnel process of cloud-vm: ``python -m codebolt_topo.providers.ssh_tunnel``.

A cloud-vm node's daemon listens on the host's loopback only, so its port is never exposed; this
process, one per node on the orchestrator's machine, forwards ``127.0.0.1:<local port>`` to it
over SSH (see :mod:`~codebolt_topo.providers.ssh_forward`). It must outlive the CLI that started
it (other local nodes and later ``codebolt exec`` calls reach the node through it), so it is
started like a local node daemon: ``posix_spawn`` in a new session, output to ``tunnel.log``,
``{"port", "pid"}`` written on fd 3 once the first SSH connection is up and the port listens,
and the topology's markers in its environment so a later run can find it (:func:`scan_tunnels`).

Its config file (0600, in the node's local directory) holds the SSH settings and the node's
whole handle, so a tunnel found by its markers tells where its remote daemon is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.topology import SshSettings
from codebolt_topo.providers.local import (
    _open_exit_waiter,
    _proc_start_time,
    _read_all,
    _reap,
    _write_private,
)

__all__ = ["main", "scan_tunnels", "serve", "spawn_tunnel", "stop_tunnel"]

log = logging.getLogger("codebolt_topo.ssh_tunnel")
MODULE = "codebolt_topo.providers.ssh_tunnel"
READY_FD = 3
READY_TIMEOUT = 30.0


async def serve(config: dict[str, Any], ready_fd: int | None) -> int:
    """Forward until SIGTERM or SIGINT; 1 if the first SSH connection fails."""
    from codebolt_topo.providers.ssh_forward import Forwarder  # asyncssh: only in the process

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
        forwarder.serve_client, config.get("listen_host", "127.0.0.1"),
        int(config.get("listen_port", 0)),
    )
    port = int(server.sockets[0].getsockname()[1])
    log.info("forwarding 127.0.0.1:%d -> %s:%s:%d (pid %d)", port, settings.host,
             config["remote_host"], config["remote_port"], os.getpid())
    if ready_fd is not None:
        with os.fdopen(ready_fd, "w") as ready:
            ready.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
    await stop.wait()
    server.close()
    await forwarder.close()
    await server.wait_closed()
    await keeper
    log.info("tunnel stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="Forward a local port to a cloud-vm node.")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    config = json.loads(args.config.read_text())
    return asyncio.run(serve(config, args.ready_fd))


def scan_tunnels(topology: str, lineage: str) -> list[tuple[int, str, dict[str, Any]]]:
    """Tunnel processes on this machine carrying these markers: (pid, node, config)."""
    wanted = {f"CODEBOLT_TOPOLOGY={topology}".encode(), f"CODEBOLT_LINEAGE={lineage}".encode()}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            if MODULE.encode() not in cmdline:
                continue
            environ = set(Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"))
            config_path = cmdline[cmdline.index(b"--config") + 1].decode()
            config = json.loads(Path(config_path).read_text())
        except (OSError, ValueError, IndexError):
            continue
        if wanted <= environ:
            node = next((v[len(b"CODEBOLT_NODE="):].decode() for v in environ
                         if v.startswith(b"CODEBOLT_NODE=")), None)
            if node is not None:
                found.append((int(entry.name), node, config))
    return found


async def spawn_tunnel(
    node_dir: Path, config: dict[str, Any], markers: dict[str, str]
) -> tuple[int, int | None, int]:
    """Start a tunnel process for ``config``; return its (pid, start time, local port) once it
    forwards. Raises :class:`ProviderError` with the tail of its log if it cannot."""
    config_path = node_dir / "tunnel.json"
    _write_private(config_path, json.dumps(config, indent=2).encode())
    read_fd, write_fd = os.pipe()
    log_fd = os.open(node_dir / "tunnel.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [sys.executable, "-m", MODULE, "--config", str(config_path),
            "--ready-fd", str(READY_FD)]
    try:
        pid = os.posix_spawn(  # noqa: ASYNC221 - returns as soon as the child exists
            sys.executable, argv, {**os.environ, **markers},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_DUP2, write_fd, READY_FD),
            ],
            setsid=True,
        )
    finally:
        os.close(write_fd)
        os.close(log_fd)
    start_time = _proc_start_time(pid)
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(_read_all, read_fd), READY_TIMEOUT)
    except TimeoutError:
        await stop_tunnel({"pid": pid, "start_time": start_time}, grace=1.0)
        raise ProviderError(f"ssh tunnel did not come up within {READY_TIMEOUT:.0f} s"
                            f"{_tail(node_dir)}") from None
    if not ready:
        _reap(pid)
        raise ProviderError(f"ssh tunnel exited during start{_tail(node_dir)}")
    return pid, start_time, int(json.loads(ready)["port"])


async def stop_tunnel(handle: dict[str, Any], *, grace: float) -> None:
    """SIGTERM the tunnel's group, SIGKILL after ``grace`` s; nothing if it is gone."""
    if "pid" not in handle:
        return
    pid = int(handle["pid"])
    gone = await _open_exit_waiter(handle)
    if gone is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(gone), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await gone
    _reap(pid)


def _tail(node_dir: Path, lines: int = 6) -> str:
    try:
        text = (node_dir / "tunnel.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "; tunnel log:\n  " + "\n  ".join(text[-lines:]) if text else ""


if __name__ == "__main__":
    sys.exit(main())
