"""Apply and destroy: carry out a plan against providers and nodes, saving state as it goes.

Order of an apply, chosen so that a failure half-way leaves a consistent, resumable state:

1. replaced nodes are stopped, then (re)created together with new nodes, in parallel;
2. every node whose wiring changed gets a ``configure`` push (peers, routes, accepted tokens,
   plugins): this is how neighbours are rewired without a restart;
3. removed nodes are stopped last, after no neighbour routes to them any more.

The state file is written after every node changes (atomic rename), under the lock held by the
caller; the nodes that change at the same time share one write (engine/saves.py). Errors of one
node do not stop the others; they are collected and raised together.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.certificates import identity_for, node_serves_tls
from codebolt_topo.engine.dialing import EdgeEnds, resolve_edge
from codebolt_topo.engine.events import EventJournal
from codebolt_topo.engine.history import HistoryKeeper
from codebolt_topo.engine.joined_nodes import dials_out_only, joined_and_placed
from codebolt_topo.engine.joining import (
    join_offers_for,
    prepare_offers,
)
from codebolt_topo.engine.reasons import one_line
from codebolt_topo.engine.saves import CoalescedSaves
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.errors import TopoError
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.model.topology import DialMode
from codebolt_topo.plan.desired import DesiredNode, stable_hash
from codebolt_topo.plan.diff import Action, ActionKind, Plan
from codebolt_topo.plan.placement import Forecast
from codebolt_topo.providers.base import NodeLaunch, Observation, Provider, ProviderContext
from codebolt_topo.providers.registry import load_provider
from codebolt_topo.wire.config import (
    DialOut,
    LaunchConfig,
    PeerLink,
    RuntimeConfig,
    token_digest,
)

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

    state_file: StateBackend
    progress: Callable[[str], None] = lambda message: None
    providers: dict[str, Provider] = field(default_factory=dict)
    #: Archives each node's narrative history before it is stopped (engine/history.py).
    history: HistoryKeeper | None = None
    _saves: CoalescedSaves | None = field(default=None, init=False, repr=False)

    @property
    def journal(self) -> EventJournal:
        """Where each node's lifecycle events and their reasons are recorded (describe)."""
        return EventJournal(self.state_file.runtime_dir)

    def provider(self, name: str, state: State) -> Provider:
        if name not in self.providers:
            context = ProviderContext(
                topology=state.topology,
                lineage=state.lineage,
                runtime_dir=self.state_file.runtime_dir,
                base_dir=self.state_file.directory.parent,
                progress=self.progress,  # long provider steps are timed like the engine's
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

    async def forecast(self, plan: Plan, state: State) -> list[Forecast]:
        """Where the placing providers (hybrid) will put the nodes ``plan`` starts with them."""
        names = {a.provider for a in plan.of_kind(ActionKind.CREATE, ActionKind.REPLACE)}
        forecasts: list[Forecast] = []
        for name in sorted(names):
            forecasts.extend(await self.provider(name, state).forecast(plan, state))
        return forecasts

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
                self.journal.record(
                    found.node, "orphan-removed", f"left by an interrupted run: {found.handle}"
                )
                await provider.destroy(found.handle, grace=2.0)
                removed.append(found.node)
        return removed

    async def apply(
        self, plan: Plan, state: State, configure: frozenset[str] | None = None
    ) -> State:
        """Carry out ``plan``; ``configure`` (a targeted apply) limits the ``configure``
        pushes to those nodes, leaving every other node's wiring as it is."""
        failures: dict[str, str] = {}
        limit = asyncio.Semaphore(PARALLEL_STARTS)
        # What the journal records: the reasons as a plan shows them, env values masked.
        why = {a.node: one_line(a) for a in plan.actions}

        async def start(action: Action) -> None:
            async with limit:
                try:
                    if action.kind is ActionKind.REPLACE:
                        reason = f"replace: {why[action.node]}"
                        await self._stop(state, action.node, reason, replacing=True)
                    forecast = plan.placements.get(action.node)
                    await self._create(
                        state, plan.desired[action.node], forecast.entry if forecast else None
                    )
                except TopoError as error:
                    failures[action.node] = str(error)

        await asyncio.gather(
            *(start(action) for action in plan.of_kind(ActionKind.CREATE, ActionKind.REPLACE))
        )
        self.sync_edge_tokens(state, plan.desired)
        failures.update(prepare_offers(self, state, plan.desired))  # before their join points
        await asyncio.gather(
            *(
                self._configure(state, desired, failures)
                for desired in plan.desired.values()
                if desired.name not in failures and (configure is None or desired.name in configure)
            )
        )
        for action in plan.of_kind(ActionKind.DELETE):
            try:
                await self._stop(state, action.node, why[action.node] or "removed")
            except TopoError as error:
                failures[action.node] = str(error)
        if failures:
            raise ApplyError(failures)
        return state

    async def destroy(self, state: State) -> State:
        failures: dict[str, str] = {}

        async def stop(name: str) -> None:
            try:
                await self._stop(state, name, "destroy")
            except TopoError as error:
                failures[name] = str(error)

        await asyncio.gather(*(stop(name) for name in list(state.nodes)))
        if failures:
            raise ApplyError(failures)
        state.edge_tokens.clear()
        state.ca = None  # the topology's CA goes with it: a new apply makes a new one
        self.state_file.save(state)
        return state

    async def _save(self, state: State) -> None:
        """Write ``state`` with the other nodes' changes of the moment (engine/saves.py)."""
        if self._saves is None:
            self._saves = CoalescedSaves(self.state_file.save)
        await self._saves.save(state)

    async def _create(self, state: State, desired: DesiredNode, entry: int | None = None) -> None:
        """Start ``desired`` (on placement entry ``entry`` when the plan forecast one), with a
        certificate of its own (engine/certificates.py)."""
        name = desired.name
        serve = node_serves_tls(desired.spec, entry)
        identity = identity_for(state, name, serve=serve)
        node_dir = self.state_file.runtime_dir / "nodes" / name
        admin_token = secrets.token_urlsafe(32)
        node = NodeState(
            name=name,
            provider=desired.spec.provider,
            admin_token=admin_token,
            launch=desired.launch_settings,
            launch_hash=desired.launch_hash,
            pinned_ca=identity.ca if serve else None,
        )
        state.nodes[name] = node
        why = f"provider {desired.spec.provider}"
        node.move_to(Lifecycle.STARTING, why)
        await self._save(state)
        self.progress(f"{name}: starting ({desired.spec.provider})")
        self.journal.record(name, "starting", why)
        launch = LaunchConfig(
            topology=state.topology,
            node=name,
            host=desired.spec.host,
            port=desired.spec.port or 0,
            admin_token_digest=token_digest(admin_token),
            workspace=str(desired.workspace or node_dir / "workspace"),
            state_dir=str(node_dir),
            env=desired.spec.env,
            tls=identity,
        )
        try:
            placement = await self.provider(desired.spec.provider, state).create(
                NodeLaunch(name=name, spec=desired.spec, config=launch, placement=entry)
            )
        except TopoError as error:
            node.move_to(Lifecycle.FAILED, str(error))
            await self._save(state)
            self.journal.record(name, "start-failed", str(error))
            raise
        node.handle, node.host, node.port = placement.handle, placement.host, placement.port
        where = f"at {node.url}"
        if dials_out_only(node):  # runs elsewhere, when its developer joins
            node.host = node.port = None
            where = f"ready to be joined (codebolt state credentials {name})"
        node.move_to(Lifecycle.RUNNING, where)
        await self._save(state)
        self.progress(f"{name}: {where if node.url is None else f'running {where}'}")
        self.journal.record(name, "running", where)

    async def _stop(self, state: State, name: str, reason: str, replacing: bool = False) -> None:
        node = state.nodes[name]
        if self.history is not None:
            await self.history.keep(state, node, replacing=replacing)
        self.journal.record(name, "stopping", reason)
        if node.lifecycle not in (Lifecycle.STOPPING, Lifecycle.STOPPED):
            node.move_to(Lifecycle.STOPPING, reason)
            await self._save(state)
        self.progress(f"{name}: stopping")
        if node.handle:
            await self.provider(node.provider, state).destroy(node.handle)
        del state.nodes[name]
        await self._save(state)
        self.progress(f"{name}: stopped")
        self.journal.record(name, "stopped", reason)

    def sync_edge_tokens(self, state: State, desired: Mapping[str, DesiredNode]) -> None:
        """One token per wanted edge: those of edges gone are dropped, new edges get one."""
        wanted = {f"{n.name}->{peer}" for n in desired.values() for peer in n.peers}
        for key in list(state.edge_tokens):
            if key not in wanted:
                del state.edge_tokens[key]
        for key in sorted(wanted - set(state.edge_tokens)):
            state.edge_tokens[key] = secrets.token_urlsafe(32)

    def peer_links(
        self, state: State, desired: DesiredNode
    ) -> tuple[dict[str, PeerLink], list[str]]:
        """Links to ``desired``'s running peers (opened by the end each edge's ``dial`` and the
        providers choose: engine/dialing.py), and the running peers it can neither reach nor
        be reached by as asked: an edge that cannot carry work is an error to report, not to
        drop quietly."""
        links, unreachable = {}, []
        for peer in desired.peers:
            ends = self._edge_ends(state, desired.name, peer, desired.dials.get(peer, "auto"))
            if ends is None:
                continue  # not started (yet): wired when it runs
            link = ends.peer_link(state.edge_tokens[f"{desired.name}->{peer}"])
            if link is None:
                unreachable.append(peer)
            else:
                links[peer] = link
        return links, unreachable

    def dial_outs(self, state: State, desired: DesiredNode) -> dict[str, DialOut]:
        """The senders ``desired`` dials (its inbound edges whose receiver opens the link)."""
        outs = {}
        for source in desired.inbound:
            mode = desired.inbound_dials.get(source, "auto")
            ends = self._edge_ends(state, source, desired.name, mode)
            out = ends.dial_out(state.edge_tokens[f"{source}->{desired.name}"]) if ends else None
            if out is not None:
                outs[source] = out
        return outs

    def _edge_ends(self, state: State, source: str, target: str, mode: DialMode) -> EdgeEnds | None:
        sender, receiver = state.nodes.get(source), state.nodes.get(target)
        if sender is None or receiver is None or not (_wired(sender) and _wired(receiver)):
            return None

        def url_from(start: NodeState, end: NodeState) -> str | None:
            return self.provider(start.provider, state).peer_url(end, start)

        return resolve_edge(mode, sender, receiver, url_from)

    def runtime_config(
        self, state: State, desired: DesiredNode, peers: dict[str, PeerLink]
    ) -> RuntimeConfig:
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
            dial=self.dial_outs(state, desired),
            upstream=desired.upstream,
            joins=join_offers_for(state, desired.name),
            plugins=desired.plugins,
            capabilities=sorted(sender.offers(desired.spec)[0]),
            hop_limit=max(16, len(state.nodes)),
            keepalive_interval=desired.keepalive[0],
            keepalive_timeout=desired.keepalive[1],
            limits=desired.limits,
        )

    async def configure(
        self, state: State, nodes: list[DesiredNode], failures: dict[str, str]
    ) -> None:
        """Push each of ``nodes`` the wiring it should run with, where it changed."""
        await asyncio.gather(*(self._configure(state, desired, failures) for desired in nodes))

    async def _configure(
        self, state: State, desired: DesiredNode, failures: dict[str, str]
    ) -> None:
        node = state.nodes.get(desired.name)
        if node is None or not (node.lifecycle is Lifecycle.RUNNING or joined_and_placed(node)):
            return
        if node.url is None and not dials_out_only(node):
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
        if dials_out_only(node):  # its wiring went into its offer (engine/joining.py)
            node.generation, node.runtime_hash = pushed.generation, digest
            node.wiring = _jsonable(desired.wiring)
            await self._save(state)
            return
        try:
            async with NodeClient.admin(node) as client:
                await client.configure(pushed)
                if not node.detected:  # probed once by the daemon where it runs
                    node.detected = list((await client.info()).get("detected", []))
        except (TopoError, OSError) as error:
            failures[desired.name] = f"configure failed: {error}"
            self.journal.record(desired.name, "configure-failed", str(error))
            return
        node.generation = pushed.generation
        node.runtime_hash = digest
        node.wiring = _jsonable(desired.wiring)
        await self._save(state)
        self.progress(f"{desired.name}: configured (generation {node.generation})")
        self.journal.record(
            desired.name,
            "configured",
            f"generation {node.generation}: sends work to {', '.join(peers) or 'nobody'}",
        )


def _wired(node: NodeState) -> bool:
    """Whether ``node`` can have its edges wired: it runs and is reachable at its URL, or it
    is a joined node, which opens every edge itself."""
    if node.url is not None:
        return True
    return joined_and_placed(node)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """Wiring as it reads back from JSON, so comparisons with the state file are exact."""
    result: dict[str, Any] = json.loads(json.dumps(value))
    return result
