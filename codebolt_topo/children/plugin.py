"""The TopologyManagerPlugin: a parent node that spawns and closes child topologies.

Enable it on a node (``plugins: {topology-manager: {}}``) and every job started there finds, in
``$CODEBOLT_CHILDREN``, a Unix socket (mode 0600, in a private 0700 directory: only this user's
processes reach it) that speaks the children API of :mod:`codebolt_topo.children.api`. An agent
running on the parent applies a child topology, runs work in it and destroys it, without any
token or state file of its own: the plugin holds them, under the parent's state directory.

Why a socket and not the node's WebSocket: the caller is a job of this very node, so the OS
already says who it is (file permissions), and an agent in any language needs nothing but JSON
lines. Apply and destroy run in worker threads (they drive providers with their own event loop),
one at a time; ``exec`` runs on the node's loop.

Disabling the plugin (which the node does when it stops, so ``codebolt destroy`` of the parent)
destroys every child first, blocking the stop for as long as that takes: a parent never leaves
its children running. A parent killed with SIGKILL cannot do this, so every process the plugin
starts carries ``CODEBOLT_CHILD_OF=<the parent's state directory>`` in its environment, and
the plugin, when enabled, stops the node daemons carrying its own state directory: the parent's
replacement (``watch``, ``apply``) closes the children its killed predecessor left, and so does
``destroy`` of a dead local parent; their containers, networks and volumes, which carry the
children's state directories in their labels, go too (:mod:`codebolt_topo.providers.leftovers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from codebolt_topo.children.api import (
    ENV_VAR,
    MAX_LINE,
    ChildRequest,
    child_dir,
    child_file,
    child_name,
    encode_reply,
    error_reply,
    parse_request,
)
from codebolt_topo.errors import ConfigError, TopoError
from codebolt_topo.node.hooks import NodeContext, hookimpl
from codebolt_topo.providers.leftovers import CHILD_OF, CHILDREN_DIR, reap_children

__all__ = ["CHILD_OF", "TopologyManagerPlugin"]

log = logging.getLogger(__name__)


class TopologyManagerPlugin:
    """Serves the children API while enabled; destroys every child when disabled."""

    def __init__(self) -> None:
        self._state_dir: Path | None = None
        self._socket_dir: Path | None = None
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Task[None] | None = None
        self._reaping: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def children_root(self) -> Path:
        assert self._state_dir is not None
        return self._state_dir / CHILDREN_DIR

    @hookimpl
    def codebolt_node_enable(self, node: NodeContext, name: str, settings: dict[str, Any]) -> None:
        if node.state_dir is None:
            raise ConfigError(f"plugin {name!r} needs the node's state directory")
        self._state_dir = node.state_dir
        # A short private path: a Unix socket path must fit in 108 bytes, state dirs may not.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="codebolt-children-"))
        path = self._socket_dir / "api.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(16)  # connections wait in the backlog until the server task runs
        self._starting = asyncio.ensure_future(self._start(listener))
        node.job_env[ENV_VAR] = str(path)
        # Child daemons inherit this process's environment (providers spawn with os.environ);
        # jobs do not (they get job_env, copied at start).
        os.environ[CHILD_OF] = str(node.state_dir)
        self._reaping = asyncio.ensure_future(self._reap_orphans(str(node.state_dir)))

    async def _reap_orphans(self, state_dir: str) -> None:
        """Close the children a killed predecessor of this node left (see module doc)."""
        async with self._lock:
            await reap_children(state_dir)

    async def _start(self, listener: socket.socket) -> None:
        self._server = await asyncio.start_unix_server(self._serve, sock=listener, limit=MAX_LINE)

    @hookimpl
    def codebolt_node_disable(self, node: NodeContext, name: str) -> None:
        node.job_env.pop(ENV_VAR, None)
        os.environ.pop(CHILD_OF, None)
        for task in (self._starting, self._reaping):
            if task is not None:
                task.cancel()
        if self._server is not None:
            self._server.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._close_children()

    def _close_children(self) -> None:
        """Destroy every child, blocking: the node is stopping (runs its own event loops)."""
        files = sorted(self.children_root.glob("*/topology.yaml")) if self._state_dir else []
        if not files:
            return

        def destroy_all() -> None:
            from codebolt_topo.engine.operations import destroy_topology

            for file in files:
                try:
                    destroy_topology(file, name=file.parent.name)
                    log.info("child topology %s destroyed", file.parent.name)
                except Exception:
                    log.exception("destroying child topology %s failed", file.parent.name)

        worker = threading.Thread(target=destroy_all, name="close-children")
        worker.start()
        worker.join()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = await self._handle(parse_request(line))
                except TopoError as exc:
                    reply = error_reply(str(exc))
                except Exception as exc:  # the agent gets a reply, the node goes on
                    log.exception("children API request failed")
                    reply = error_reply(f"internal error: {exc}")
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, ValueError):  # ValueError: a line over MAX_LINE
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, request: ChildRequest) -> bytes:
        if request.op == "list":
            return encode_reply(
                children={
                    file.parent.name: {"file": str(file), "nodes": _lifecycles(file)}
                    for file in sorted(self.children_root.glob("*/topology.yaml"))
                }
            )
        if request.op == "apply":
            assert request.topology is not None
            return await self._apply(request.topology)
        assert request.name is not None
        assert self._state_dir is not None
        file = child_file(self._state_dir, request.name)
        if not file.exists():
            raise ConfigError(f"no child topology named {request.name!r}")
        if request.op == "destroy":
            return await self._destroy(request.name, file)
        return await _exec(file, request)

    async def _apply(self, text: str) -> bytes:
        from codebolt_topo.engine.operations import apply_topology

        assert self._state_dir is not None
        name = child_name(text)
        file = child_file(self._state_dir, name)
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        async with self._lock:
            file.write_text(text, encoding="utf-8")
            plan, _ = await asyncio.to_thread(apply_topology, file)
        return encode_reply(
            name=name, file=str(file), changes=len(plan.actions), nodes=_lifecycles(file)
        )

    async def _destroy(self, name: str, file: Path) -> bytes:
        from codebolt_topo.engine.operations import destroy_topology

        assert self._state_dir is not None
        async with self._lock:
            plan, _ = await asyncio.to_thread(destroy_topology, file, name=name)
            shutil.rmtree(child_dir(self._state_dir, name), ignore_errors=True)
        return encode_reply(name=name, stopped=len(plan.actions))


async def _exec(file: Path, request: ChildRequest) -> bytes:
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.entry_node import resolve_entry

    assert request.node is not None
    entry = await asyncio.to_thread(resolve_entry, file, [request.node])
    async with NodeClient.connect(entry.url, entry.token, name=entry.node, ca=entry.ca) as client:
        handle = await client.exec(
            request.node, argv=request.argv, shell=request.shell, timeout=request.timeout
        )
        result = (await handle.result())[request.node]
    if result.failure is not None:
        raise result.failure.error()
    exit_ = result.exit
    return encode_reply(
        code=None if exit_ is None else exit_.code,
        signal=None if exit_ is None else exit_.signal,
        stdout=result.stdout.decode(errors="replace"),
        stderr=result.stderr.decode(errors="replace"),
    )


def _lifecycles(file: Path) -> dict[str, str]:
    from codebolt_topo.engine.operations import state_file_for

    state = state_file_for(file, file.parent.name).load(sealed_ok=True)
    return {name: node.lifecycle.value for name, node in sorted(state.nodes.items())}
