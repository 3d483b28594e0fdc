"""The per-node relay of e2b: ``python -m codebolt_topo.providers.e2b.relay_main``.

A sandbox's ports are reached through e2b's proxy at ``<port>-<sandbox id>.<domain>`` (TLS),
which routes by the request's ``Host``; node clients here speak to ``ws://127.0.0.1:<port>``.
This process, one per e2b node on the orchestrator's machine, listens on a loopback port and,
for each connection, rewrites the head of its first request (the WebSocket upgrade) to name the
sandbox's port (``Host`` and the ``E2b-Sandbox-Id``/``E2b-Sandbox-Port`` headers the SDK itself
sends), then relays bytes both ways. With ``E2B_SANDBOX_URL`` set (the SDK's own override of
where sandbox traffic goes), connections go there instead, over TLS only if it says https.

It also keeps the sandbox alive: every third of the node's ``timeout`` it renews the sandbox's
timeout through the SDK, so the sandbox lives exactly as long as this process (plus at most
``timeout``). When the sandbox is gone it exits, which ``inspect`` reports.

It is started like a local daemon (:func:`~codebolt_topo.providers.processes.spawn_detached`),
with the topology's markers in its environment; its config file (0600, in the node's local
directory) holds the sandbox id and settings, never the API key, which it takes from its
environment like the SDK does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

from codebolt_topo.providers.processes import helper_main, report_ready

__all__ = ["Target", "main", "pipe", "rewrite_head", "serve"]

log = logging.getLogger("codebolt_topo.e2b_relay")
MODULE = "codebolt_topo.providers.e2b.relay_main"
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0
_DROPPED = (b"host", b"e2b-sandbox-id", b"e2b-sandbox-port", b"e2b-traffic-access-token")


class Target:
    """Where connections for one sandbox port go, and the headers that route them there."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.sandbox_id = str(config["sandbox_id"])
        self.port = int(config["port"])
        self.host_name = f"{self.port}-{self.sandbox_id}.{config['domain']}"
        self.traffic_token = config.get("traffic_access_token")
        override = config.get("sandbox_url")
        if override:
            url = urlsplit(override)
            self.tls = url.scheme == "https"
            self.address = (url.hostname or "127.0.0.1", url.port or (443 if self.tls else 80))
        else:
            self.tls = True
            self.address = (self.host_name, 443)

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Host", self.host_name),
            ("E2b-Sandbox-Id", self.sandbox_id),
            ("E2b-Sandbox-Port", str(self.port)),
        ]
        if self.traffic_token:
            headers.append(("e2b-traffic-access-token", str(self.traffic_token)))
        return headers

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self.tls else None
        return await asyncio.open_connection(
            *self.address, ssl=context, server_hostname=self.host_name if self.tls else None
        )


def rewrite_head(head: bytes, headers: list[tuple[str, str]]) -> bytes:
    """``head`` (a request line and headers, ending with a blank line) with its routing
    headers replaced by ``headers``."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]] + [
        line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in _DROPPED
    ]
    kept += [f"{name}: {value}".encode() for name, value in headers]
    return b"\r\n".join(kept) + b"\r\n\r\n"


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF or a broken connection, then half-close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()


async def relay(target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one client connection: rewrite its first request head, then relay both ways."""
    upstream: asyncio.StreamWriter | None = None
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        up_reader, upstream = await target.open()
        upstream.write(rewrite_head(head, target.headers()))
        await asyncio.gather(pipe(reader, upstream), pipe(up_reader, writer))
    except (
        OSError,
        TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ssl.SSLError,
    ) as error:
        log.warning("connection to %s failed: %s", target.host_name, error)
        if upstream is None:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    finally:
        for stream in (writer, upstream):
            if stream is not None:
                stream.close()


async def keep_alive(config: dict[str, Any], stop: asyncio.Event) -> None:
    """Renew the sandbox's timeout every third of it; set ``stop`` when the sandbox is gone."""
    from e2b import AsyncSandbox
    from e2b.exceptions import NotFoundException

    timeout = int(config["timeout"])
    interval = max(1.0, timeout / 3)
    while not stop.is_set():
        try:
            await AsyncSandbox.set_timeout(config["sandbox_id"], timeout)
        except NotFoundException:
            log.info("sandbox %s is gone; stopping", config["sandbox_id"])
            stop.set()
            return
        except Exception as error:  # network, auth, 5xx: log and retry; never crash the relay
            log.warning("cannot renew the sandbox's timeout: %s: %s", type(error).__name__, error)
            interval = max(1.0, timeout / 10)  # retry sooner, well before it lapses
        else:
            interval = max(1.0, timeout / 3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def serve(config: dict[str, Any], ready_fd: int | None) -> int:
    """Relay and keep alive until SIGTERM, SIGINT or the sandbox's end."""
    target = Target(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(
        lambda r, w: relay(target, r, w),
        "127.0.0.1",
        int(config.get("listen_port", 0)),
        limit=HEAD_LIMIT,
    )
    port = int(server.sockets[0].getsockname()[1])
    keeper = asyncio.create_task(keep_alive(config, stop))
    log.info("relaying 127.0.0.1:%d -> %s (pid %d)", port, target.host_name, os.getpid())
    report_ready(ready_fd, port)
    await stop.wait()
    server.close()
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    log.info("relay stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    return helper_main(
        argv,
        module=MODULE,
        description="Relay a local port to an e2b node.",
        serve=serve,
        quiet=("httpx", "httpcore", "pyqwest", "e2b"),
    )


if __name__ == "__main__":
    sys.exit(main())
