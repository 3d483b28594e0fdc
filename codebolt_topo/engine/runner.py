"""Apply and destroy: carry out a plan against providers and nodes, saving state as it goes.

Order of an apply, chosen so that a failure half-way leaves a consistent, resumable state:

1. replaced nodes are stopped, then (re)created together with new nodes, in parallel;
2. every node whose wiring changed gets a ``configure`` push (peers, routes, accepted tokens,
   plugins): this is how neighbours are rewired without a restart;
3. removed nodes are stopped last, after no neighbour routes to them any more.

The state file is written after every node changes (atomic rename), under the lock held by the
caller. Errors of one node do not stop the others; they are collected and raised together.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.statefile import StateFile
from codebolt_topo.errors import TopoError
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.node.config import LaunchConfig, PeerLink, RuntimeConfig, token_digest
from codebolt_topo.plan.desired import DesiredNode, stable_hash
from codebolt_topo.plan.diff import ActionKind, Plan
from codebolt_topo.providers.base import NodeLaunch, Observation, Provider, ProviderContext
from codebolt_topo.providers.registry import load_provider

__all__ = ["ApplyError", "Engine"]

#: Nodes started at once; the rest wait. Bounded so a 100-node apply does not fork-bomb a laptop.
PARALLEL_STARTS = 8


class ApplyError(TopoError):
    """Some nodes could not be brought to the desired state; the others were."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [
            message if message.startswith(f"node {name!r}") else f"node {name!r}: {message}"
            for name, message in sorted(failures.items())
        ]
        super().__init__("apply did not complete:\n  " + "\n  ".join(lines))


@dataclass
class Engine:
    """Runs plans for one topology; the caller holds the state lock around mutating calls."""

    state_file: StateFile
    progress: Callable[[str], None] = lambda message: None
    providers: dict[str, Provider] = field(default_factory=dict)

    def provider(self, name: str, state: State) -> Provider:
        if name not in self.providers:
            context = ProviderContext(
                topology=state.topology,
                lineage=state.lineage,
                runtime_dir=self.state_file.runtime_dir,
                base_dir=self.state_file.directory.parent,
            )
            self.providers[name] = load_provider(name)(context)
        return self.providers[name]

    async def refresh(self, state: State) -> dict[str, Observation]:
        """Ask each provider whether each recorded node is still alive."""

        async def observe(node: NodeState) -> Observation:
            if not node.handle:
                return Observation(alive=False, reason=f"never started ({node.lifecycle})")
            return await self.provider(node.provider, state).inspect(node.handle)

        names = list(state.nodes)
        results = await asyncio.gather(*(observe(state.nodes[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def remove_orphans(self, state: State, providers: set[str]) -> list[str]:
        """Stop nodes that carry this topology's markers but that the state does not record:
        what a run killed between starting a node and saving its handle leaves behind."""
        removed = []
        for name in sorted(providers | {node.provider for node in state.nodes.values()}):
            provider = self.provider(name, state)
            for found in await provider.discover():
                recorded = state.nodes.get(found.node)
                if recorded is not None and recorded.handle and found.same_as(recorded.handle):
                    continue
                self.progress(
                    f"{found.node}: removing an orphan left by an interrupted run ({found.handle})"
                )
                await provider.destroy(found.handle, grace=2.0)
                removed.append(found.node)
        return removed

    async def apply(self, plan: Plan, state: State) -> State:
        failures: dict[str, str] = {}
        limit = asyncio.Semaphore(PARALLEL_STARTS)

        async def start(action_kind: ActionKind, name: str) -> None:
            async with limit:
                try:
                    if action_kind is ActionKind.REPLACE:
                        await self._stop(state, name)
                    await self._create(state, plan.desired[name])
                except TopoError as error:
                    failures[name] = str(error)

        await asyncio.gather(
            *(
                start(action.kind, action.node)
                for action in plan.of_kind(ActionKind.CREATE, ActionKind.REPLACE)
            )
        )
        self._sync_edge_tokens(state, plan.desired)
        await asyncio.gather(
            *(
                self._configure(state, desired, failures)
                for desired in plan.desired.values()
                if desired.name not in failures
            )
        )
        for action in plan.of_kind(ActionKind.DELETE):
            try:
                await self._stop(state, action.node)
            except TopoError as error:
                failures[action.node] = str(error)
        if failures:
            raise ApplyError(failures)
        return state

    async def destroy(self, state: State) -> State:
        failures: dict[str, str] = {}

        async def stop(name: str) -> None:
            try:
                await self._stop(state, name)
            except TopoError as error:
                failures[name] = str(error)

        await asyncio.gather(*(stop(name) for name in list(state.nodes)))
        if failures:
            raise ApplyError(failures)
        state.edge_tokens.clear()
        self.state_file.save(state)
        return state

    async def _create(self, state: State, desired: DesiredNode) -> None:
        name = desired.name
        node_dir = self.state_file.runtime_dir / "nodes" / name
        admin_token = secrets.token_urlsafe(32)
        node = NodeState(
            name=name,
            provider=desired.spec.provider,
            admin_token=admin_token,
            launch=desired.launch_settings,
            launch_hash=desired.launch_hash,
        )
        state.nodes[name] = node
        node.move_to(Lifecycle.STARTING)
        self.state_file.save(state)
        self.progress(f"{name}: starting ({desired.spec.provider})")
        launch = LaunchConfig(
            topology=state.topology,
            node=name,
            host=desired.spec.host,
            port=desired.spec.port or 0,
            admin_token_digest=token_digest(admin_token),
            workspace=str(desired.workspace or node_dir / "workspace"),
            state_dir=str(node_dir),
            env=desired.spec.env,
        )
        try:
            placement = await self.provider(desired.spec.provider, state).create(
                NodeLaunch(name=name, spec=desired.spec, config=launch)
            )
        except TopoError:
            node.move_to(Lifecycle.FAILED)
            self.state_file.save(state)
            raise
        node.handle, node.host, node.port = placement.handle, placement.host, placement.port
        node.move_to(Lifecycle.RUNNING)
        self.state_file.save(state)
        self.progress(f"{name}: running at {node.url}")

    async def _stop(self, state: State, name: str) -> None:
        node = state.nodes[name]
        if node.lifecycle not in (Lifecycle.STOPPING, Lifecycle.STOPPED):
            node.move_to(Lifecycle.STOPPING)
            self.state_file.save(state)
        self.progress(f"{name}: stopping")
        if node.handle:
            await self.provider(node.provider, state).destroy(node.handle)
        del state.nodes[name]
        self.state_file.save(state)
        self.progress(f"{name}: stopped")

    def _sync_edge_tokens(self, state: State, desired: Mapping[str, DesiredNode]) -> None:
        wanted = {f"{n.name}->{peer}" for n in desired.values() for peer in n.peers}
        for key in list(state.edge_tokens):
            if key not in wanted:
                del state.edge_tokens[key]
        for key in sorted(wanted - set(state.edge_tokens)):
            state.edge_tokens[key] = secrets.token_urlsafe(32)

    def peer_links(self, state: State,
                   desired: DesiredNode) -> tuple[dict[str, PeerLink], list[str]]:
        """Links to ``desired``'s running peers, and the running peers its provider cannot
        address: an edge that cannot carry work is an error to report, not to drop quietly."""
        links, unreachable = {}, []
        sender = self.provider(desired.spec.provider, state)
        sender_state = state.nodes.get(desired.name)
        for peer in desired.peers:
            peer_state = state.nodes.get(peer)
            if peer_state is None or peer_state.url is None:
                continue  # not started (yet): wired when it runs
            url = sender.peer_url(peer_state, sender_state)
            if url is None:
                unreachable.append(peer)
            else:
                links[peer] = PeerLink(url=url,
                                       token=state.edge_tokens[f"{desired.name}->{peer}"])
        return links, unreachable

    def runtime_config(self, state: State, desired: DesiredNode,
                       peers: dict[str, PeerLink]) -> RuntimeConfig:
        """The wiring a node should run with, given the links to its peers."""
        sender = self.provider(desired.spec.provider, state)
        accept = {
            source: token_digest(state.edge_tokens[f"{source}->{desired.name}"])
            for source in desired.inbound
        }
        return RuntimeConfig(
            peers=peers,
            routes=desired.routes,
            accept=accept,
            upstream=desired.upstream,
            plugins=desired.plugins,
            capabilities=sorted(sender.offers(desired.spec)[0]),
            hop_limit=max(16, len(state.nodes)),
            keepalive_interval=desired.keepalive[0],
            keepalive_timeout=desired.keepalive[1],
        )

    async def _configure(
        self, state: State, desired: DesiredNode, failures: dict[str, str]
    ) -> None:
        node = state.nodes.get(desired.name)
        if node is None or node.lifecycle is not Lifecycle.RUNNING or node.url is None:
            return
        peers, unreachable = self.peer_links(state, desired)
        config = self.runtime_config(state, desired, peers)
        if unreachable:
            failures[desired.name] = "; ".join(
                f"edge {desired.name} -> {peer}: a {node.provider} node cannot reach "
                f"{peer} ({state.nodes[peer].provider} at {state.nodes[peer].url}); "
                "place both where one reaches the other, or drop the edge"
                for peer in unreachable
            )
        digest = stable_hash(config.model_dump(mode="json"))
        if digest == node.runtime_hash and node.wiring == _jsonable(desired.wiring):
            return
        pushed = config.model_copy(update={"generation": node.generation + 1})
        try:
            async with NodeClient.connect(node.url, node.admin_token, name=node.name) as client:
                await client.configure(pushed)
                if not node.detected:  # probed once by the daemon where it runs
                    node.detected = list((await client.info()).get("detected", []))
        except (TopoError, OSError) as error:
            failures[desired.name] = f"configure failed: {error}"
            return
        node.generation = pushed.generation
        node.runtime_hash = digest
        node.wiring = _jsonable(desired.wiring)
        self.state_file.save(state)
        self.progress(f"{desired.name}: configured (generation {node.generation})")


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """Wiring as it reads back from JSON, so comparisons with the state file are exact."""
    result: dict[str, Any] = json.loads(json.dumps(value))
    return result
