"""The e2b provider: each node is a node daemon in its own e2b sandbox, reached by a relay.

``create`` makes a sandbox from the node's template (``e2b:`` settings) with the topology's
markers as sandbox metadata *and* environment, gets the daemon into it (:mod:`.install`),
writes its launch config through the files API, starts it in the background through the
commands API (bound to ``0.0.0.0`` inside: e2b's proxy connects to the sandbox's interface; the
token is always required) and waits for its ready line on a FIFO. Then a relay process here
(:mod:`.relay_main`) makes the node ``ws://127.0.0.1:<port>`` and renews the sandbox's timeout
while it runs.

The API key comes from ``E2B_API_KEY`` (the SDK's own variable) and is read where it is used:
it is never put in a handle, a state file, a config file or a log line. ``E2B_DOMAIN``,
``E2B_API_URL`` and ``E2B_SANDBOX_URL`` are the SDK's, honoured as it honours them.

``create`` reports its steps (creating the sandbox, uploading and installing the wheel,
starting the daemon and the relay) through the context's progress; :meth:`E2bProvider.logs`
reads the daemon's ``node.log`` in the sandbox through the commands API (:mod:`.logs`).

A node is alive when its relay runs here and its sandbox is running there. ``discover`` lists
sandboxes by metadata (topology and lineage) and relays by their markers, so what a killed run
left is found and removed by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebolt_topo.errors import ProviderError
from codebolt_topo.model.state import NodeState
from codebolt_topo.providers import processes
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
)
from codebolt_topo.providers.e2b.handle import E2bHandle
from codebolt_topo.providers.e2b.install import (
    SANDBOX_DIR,
    install_command,
    project_wheel,
    serve_command,
)
from codebolt_topo.providers.e2b.relay_main import MODULE as RELAY_MODULE
from codebolt_topo.providers.e2b.rules import E2bRules
from codebolt_topo.providers.e2b.settings import E2bNodeSettings, E2bSettings

if TYPE_CHECKING:
    from e2b import AsyncSandbox

__all__ = ["API_KEY_ENV", "E2bProvider"]

API_KEY_ENV = "E2B_API_KEY"
#: Port of the daemon inside its sandbox when the node sets none.
NODE_PORT = 3100
META_TOPOLOGY = "codebolt.topology"
META_LINEAGE = "codebolt.lineage"
META_NODE = "codebolt.node"
READY_TIMEOUT = 60.0
INSTALL_TIMEOUT = 600.0


class E2bProvider(E2bRules, Provider[E2bHandle]):
    """Node daemons in e2b sandboxes, one sandbox and one local relay process per node."""

    capabilities = frozenset({"python", "sandbox", "e2b"})

    @classmethod
    def base_offers(cls) -> tuple[frozenset[str], dict[str, str]]:
        return frozenset(cls.capabilities), {
            "gpu": "e2b sandboxes have no GPU",
            "cuda": "e2b sandboxes have no GPU",
            "docker": "e2b sandboxes run no Docker Engine unless the template adds one; "
            "declare it in the node's capabilities if yours does",
            "browser": "e2b cannot probe a template before placing a node; declare browser in "
            "the node's capabilities if the template has one",
        }

    # -- the SDK, imported on first use ------------------------------------------------------

    def _api_key(self) -> str:
        key = os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ProviderError(
                f"e2b: {API_KEY_ENV} is not set: create an API key at "
                "https://e2b.dev/dashboard?tab=keys and export it in this shell (it is read "
                "from the environment only, never stored)"
            )
        return key

    async def _call(self, what: str, call: Any) -> Any:
        """Await an SDK call, translating its errors into ProviderError (key never shown)."""
        import httpx
        from e2b.exceptions import AuthenticationException, SandboxException
        from e2b.sandbox.commands.command_handle import CommandExitException

        try:
            return await call
        except CommandExitException:
            raise  # a command's own failure: the caller reports it with its output
        except AuthenticationException as error:
            raise ProviderError(
                f"e2b: {what}: the API refused the key in {API_KEY_ENV} ({error})"
            ) from None
        except (SandboxException, OSError, httpx.HTTPError) as error:
            raise ProviderError(f"e2b: {what}: {type(error).__name__}: {error}") from None

    # -- create ------------------------------------------------------------------------------

    async def create(self, launch: NodeLaunch) -> Placement[E2bHandle]:
        spec, node = launch.spec, launch.name
        if spec.workspace is not None:
            raise ProviderError(
                f"node {node!r}: workspace: an e2b node works in its sandbox; remove workspace "
                "(use narrative sync to move files)"
            )
        settings = E2bNodeSettings.of(spec).e2b or E2bSettings()
        self._api_key()
        step = functools.partial(self.context.step, node)
        wheel = None
        if settings.install == "wheel":
            step("building the wheel")
            wheel = await asyncio.to_thread(project_wheel)
        from e2b import AsyncSandbox

        step(f"creating a sandbox (template {settings.template})")
        sandbox: AsyncSandbox = await self._call(
            "creating a sandbox",
            AsyncSandbox.create(
                template=settings.template,
                timeout=settings.timeout,
                metadata=self._metadata(node),
                envs=self._markers(node),
            ),
        )
        handle: E2bHandle = {
            "sandbox_id": sandbox.sandbox_id,
            "domain": sandbox.sandbox_domain,
        }
        try:
            port = spec.port or NODE_PORT
            await self._start_daemon(sandbox, launch, settings, port, wheel, step)
            step("starting the relay")
            relay, local_dir, local_port = await self._start_relay(sandbox, node, settings, port)
        except BaseException:
            with contextlib.suppress(ProviderError):
                await self.destroy(handle, grace=1.0)
            raise
        handle["pid"], handle["start_time"] = relay.pid, relay.start_time
        handle["dir"], handle["port"] = str(local_dir), port
        return Placement(handle=handle, host="127.0.0.1", port=local_port)

    async def _run(
        self, sandbox: AsyncSandbox, what: str, command: str, timeout: float = 120.0
    ) -> str:
        from e2b.sandbox.commands.command_handle import CommandExitException

        try:
            result = await self._call(what, sandbox.commands.run(command, timeout=timeout))
        except CommandExitException as error:
            tail = "\n  ".join((error.stderr or error.stdout or "").strip().splitlines()[-8:])
            raise ProviderError(f"e2b: {what} failed (exit {error.exit_code}):\n  {tail}") from None
        return str(result.stdout)

    async def _start_daemon(
        self,
        sandbox: AsyncSandbox,
        launch: NodeLaunch,
        settings: E2bSettings,
        port: int,
        wheel: Path | None,
        step: Callable[[str], None],
    ) -> None:
        node = launch.name
        home = (
            await self._run(
                sandbox,
                f"node {node!r}: preparing the sandbox",
                f"mkdir -p {SANDBOX_DIR}/workspace && rm -f {SANDBOX_DIR}/ready"
                f" && mkfifo {SANDBOX_DIR}/ready && pwd",
            )
        ).strip()
        if wheel is not None:
            remote = f"{SANDBOX_DIR}/{wheel.name}"
            step(f"uploading {wheel.name}")
            await self._call(
                f"node {node!r}: uploading {wheel.name}",
                sandbox.files.write(remote, wheel.read_bytes(), use_octet_stream=True),
            )
            step("installing")
            await self._run(
                sandbox,
                f"node {node!r}: installing {wheel.name}",
                install_command(settings, remote),
                timeout=INSTALL_TIMEOUT,
            )
        config = launch.config.model_copy(
            update={
                "host": "0.0.0.0",
                "port": port,
                "workspace": f"{home}/{SANDBOX_DIR}/workspace",
                "state_dir": f"{home}/{SANDBOX_DIR}",
            }
        )
        await self._call(
            f"node {node!r}: writing its config",
            sandbox.files.write(
                f"{SANDBOX_DIR}/launch.json",
                config.model_dump_json(indent=2).encode(),
                use_octet_stream=True,
            ),
        )
        step("starting the daemon")
        daemon = await self._call(
            f"node {node!r}: starting the daemon",
            sandbox.commands.run(
                serve_command(settings),
                background=True,
                timeout=0,
            ),
        )
        await daemon.disconnect()  # the daemon runs on; only our stream of its output ends
        ready = await self._run(
            sandbox,
            f"node {node!r}: waiting for the daemon",
            f"cat {SANDBOX_DIR}/ready",
            timeout=READY_TIMEOUT,
        )
        if not ready.strip():
            log = await self._run(
                sandbox,
                f"node {node!r}: reading its log",
                f"tail -n 8 {SANDBOX_DIR}/node.log || true",
            )
            raise ProviderError(
                f"node {node!r}: daemon exited during start; daemon log:\n  "
                + "\n  ".join(log.strip().splitlines())
            )

    async def _start_relay(
        self, sandbox: AsyncSandbox, node: str, settings: E2bSettings, port: int
    ) -> tuple[processes.Spawned, Path, int]:
        """Start the node's relay here: the process, its directory and its local port."""
        local_dir = self.context.runtime_dir / "nodes" / node
        local_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = {
            "sandbox_id": sandbox.sandbox_id,
            "domain": sandbox.sandbox_domain,
            "port": port,
            "timeout": settings.timeout,
            "sandbox_url": os.environ.get("E2B_SANDBOX_URL") or None,
            "traffic_access_token": sandbox.traffic_access_token,
        }
        config_path = local_dir / "relay.json"
        processes.write_private(config_path, json.dumps(config, indent=2).encode())
        spawned = await processes.spawn_detached(
            [
                sys.executable,
                "-m",
                RELAY_MODULE,
                "--config",
                str(config_path),
                "--ready-fd",
                str(processes.READY_FD),
            ],
            {**os.environ, **self._markers(node)},
            local_dir / "relay.log",
            what=f"node {node!r}: e2b relay",
            timeout=30.0,
        )
        return spawned, local_dir, int(json.loads(spawned.ready)["port"])

    # -- logs --------------------------------------------------------------------------------

    async def logs(self, handle: E2bHandle, *, follow: bool) -> AsyncIterator[str]:
        """The daemon's ``node.log`` in the sandbox, through the commands API."""
        from e2b import AsyncSandbox

        from codebolt_topo.providers.e2b.logs import follow_file

        self._api_key()
        sandbox = await self._call(
            "connecting to the sandbox", AsyncSandbox.connect(handle["sandbox_id"])
        )
        path = f"{SANDBOX_DIR}/node.log"
        if not follow:
            text = await self._run(sandbox, f"reading {path}", f"cat {path}")
            for line in text.splitlines():
                yield line
            return
        lines = follow_file(sandbox, path)
        try:
            while True:
                line = await self._call(f"following {path}", anext(lines, None))
                if line is None:
                    return
                yield line
        finally:
            await lines.aclose()

    # -- inspect, destroy, discover ----------------------------------------------------------

    async def _sandbox_info(self, handle: E2bHandle) -> Any:
        """The sandbox's info from the API; None when it no longer exists."""
        from e2b import AsyncSandbox
        from e2b.exceptions import NotFoundException

        async def info_or_none() -> Any:
            try:
                return await AsyncSandbox.get_info(handle["sandbox_id"])
            except NotFoundException:
                return None

        self._api_key()
        return await self._call("checking the sandbox", info_or_none())

    async def inspect(self, handle: E2bHandle) -> Observation:
        if "pid" not in handle or not processes.is_ours(handle):
            relay = f"e2b relay {handle.get('pid')} is gone"
            try:  # the relay ends with its sandbox: say whether the sandbox went too
                gone = "sandbox_id" in handle and await self._sandbox_info(handle) is None
            except ProviderError:
                gone = False
            if gone:
                relay += f" with sandbox {handle['sandbox_id']}"
            return Observation(alive=False, reason=relay, gone=gone)
        self._api_key()  # a missing key is an error to show, not a dead node
        try:
            info = await self._sandbox_info(handle)
        except ProviderError as error:
            return Observation(alive=False, reason=str(error))
        if info is None:
            return Observation(
                alive=False, reason=f"sandbox {handle['sandbox_id']} is gone", gone=True
            )
        if str(info.state.value) != "running":
            return Observation(
                alive=False, reason=f"sandbox {handle['sandbox_id']} is {info.state.value}"
            )
        return Observation(alive=True)

    async def destroy(self, handle: E2bHandle, *, grace: float = 5.0) -> None:
        failure: ProviderError | None = None
        if handle.get("sandbox_id"):
            from e2b import AsyncSandbox

            try:
                self._api_key()
                await self._call("killing the sandbox", AsyncSandbox.kill(handle["sandbox_id"]))
            except ProviderError as error:
                failure = error
        await processes.stop_group(handle, grace=grace)
        if handle.get("dir"):
            shutil.rmtree(handle["dir"], ignore_errors=True)
        if failure is not None:
            raise ProviderError(f"cannot kill sandbox {handle['sandbox_id']}: {failure}")

    async def discover(self) -> list[Discovered[E2bHandle]]:
        relays = await asyncio.to_thread(
            processes.scan_marked,
            self._instance_markers(),
            lambda cmdline: RELAY_MODULE.encode() in cmdline,
        )
        found: list[Discovered[E2bHandle]] = []
        known: set[str] = set()
        for relay in relays:
            try:
                config_path = relay.cmdline[relay.cmdline.index(b"--config") + 1].decode()
                config = json.loads(Path(config_path).read_text())
            except (OSError, ValueError, IndexError):
                continue
            known.add(str(config["sandbox_id"]))
            found.append(
                Discovered(
                    node=relay.environ.get("CODEBOLT_NODE", ""),
                    handle={
                        "pid": relay.pid,
                        "start_time": relay.start_time,
                        "sandbox_id": config["sandbox_id"],
                    },
                )
            )
        for info in await self._list_sandboxes():
            if info.sandbox_id not in known:
                found.append(
                    Discovered(
                        node=info.metadata.get(META_NODE, ""),
                        handle={"sandbox_id": info.sandbox_id},
                    )
                )
        return found

    async def _list_sandboxes(self) -> list[Any]:
        from e2b import AsyncSandbox, SandboxQuery

        self._api_key()
        paginator = AsyncSandbox.list(
            query=SandboxQuery(
                metadata={META_TOPOLOGY: self.context.topology, META_LINEAGE: self.context.lineage}
            )
        )
        rows: list[Any] = []
        while paginator.has_next:
            rows.extend(await self._call("listing sandboxes", paginator.next_items()))
        return rows

    # -- wiring ------------------------------------------------------------------------------

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """Another e2b node through e2b's proxy (``wss://<port>-<id>.<domain>``; plain ``ws``
        when ``E2B_SANDBOX_URL`` says http, as a local stand-in does). Nodes on this machine
        or elsewhere are out of a sandbox's reach: no URL."""
        handle = peer.handle
        if peer.provider != self.name or not handle.get("sandbox_id") or "port" not in handle:
            return None
        override = os.environ.get("E2B_SANDBOX_URL", "")
        scheme = "ws" if override.startswith("http://") else "wss"
        return f"{scheme}://{int(handle['port'])}-{handle['sandbox_id']}.{handle['domain']}"

    def _instance_markers(self) -> dict[str, str]:
        return {
            "CODEBOLT_TOPOLOGY": self.context.topology,
            "CODEBOLT_LINEAGE": self.context.lineage,
        }

    def _markers(self, node: str) -> dict[str, str]:
        return {**self._instance_markers(), "CODEBOLT_NODE": node}

    def _metadata(self, node: str) -> dict[str, str]:
        return {
            META_TOPOLOGY: self.context.topology,
            META_LINEAGE: self.context.lineage,
            META_NODE: node,
        }
