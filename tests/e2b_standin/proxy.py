"""The sandbox proxy (``sandbox.e2b.app`` and ``<port>-<id>.<domain>``), at the TCP level.

Each connection is routed by its first request head: ``E2b-Sandbox-Id``/``E2b-Sandbox-Port``
headers (what the SDK and the provider's relay send) or a ``Host`` of the form
``<port>-<id>.<domain>``. Port 49983 is envd: the connection goes to the stand-in's HTTP server,
which routes each request by header again. Any other port goes to that port on this machine
(the stand-in's sandboxes share its network). ``CONNECT <port>-<id>.<domain>:80`` tunnels the
same way: sandbox processes get ``ws_proxy`` pointing here, which is how a node in one sandbox
reaches ``ws://<port>-<id>.<domain>`` of another, a name no resolver here knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from codebolt_topo.providers.e2b.relay_main import pipe

from .sandboxes import Sandboxes

__all__ = ["ENVD_PORT", "SandboxProxy"]

ENVD_PORT = 49983


class SandboxProxy:
    def __init__(self, sandboxes: Sandboxes, envd_port: int) -> None:
        self.sandboxes = sandboxes
        self.envd_port = envd_port
        self.pattern = re.compile(rf"^(\d+)-([a-z0-9]+)\.{re.escape(sandboxes.domain)}(:\d+)?$")
        #: (sandbox id, port) of every routed connection other than envd, for tests.
        self.routed: list[tuple[str, int]] = []

    def _route(self, host: str, sandbox_id: str | None, port: int | None) -> int | None:
        """The local port a connection for (sandbox, port) goes to; None: no such sandbox."""
        match = self.pattern.match(host)
        if match and sandbox_id is None:
            port, sandbox_id = int(match.group(1)), match.group(2)
        if sandbox_id is None or port == ENVD_PORT:
            return self.envd_port
        if self.sandboxes.running(sandbox_id) is None or port is None:
            return None
        self.routed.append((sandbox_id, port))
        return port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            method, target = lines[0].split(" ")[:2]
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                if self.pattern.match(target):
                    address, local = "127.0.0.1", self._route(target, None, None)
                else:  # anything else: a plain forward proxy (pip and friends)
                    address, local = host, int(port_text)
                if local is None:
                    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    return
                up_reader, upstream = await asyncio.open_connection(address, local)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                port = headers.get("e2b-sandbox-port")
                local = self._route(
                    headers.get("host", ""),
                    headers.get("e2b-sandbox-id"),
                    int(port) if port else None,
                )
                if local is None:
                    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    return
                up_reader, upstream = await asyncio.open_connection("127.0.0.1", local)
                upstream.write(head)
            await asyncio.gather(pipe(reader, upstream), pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
