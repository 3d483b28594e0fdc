"""The hybrid provider: place a node on the first provider of its ``placement:`` list that can.

How a user scales progressively: ``placement: [local, docker, cloud-vm]`` keeps nodes on the
laptop while it has room, then spills to containers, then to VMs, by editing YAML only. An entry
is taken when its provider offers every ``requires:`` of the node (as placed with that entry's
overrides), has room (the entry's ``max_nodes`` and the provider's own :meth:`has_room`), and
actually starts the node; a :class:`TopoError` from ``create`` moves on to the next entry. The
refusal of each entry is kept, so a node no entry takes fails with every reason at once.

``plan`` forecasts each node's entry (:meth:`forecast`) with the same rules, counting what the
state records on each provider and what the plan creates there in plan order, so it shows where
each node goes and refuses one no entry can take; ``create`` then starts at the entry the plan
chose (``NodeLaunch.placement``), an earlier one having been full or unfit when planned.

Everything else (inspect, destroy, logs) is the placing provider's, given its own handle back.

The handle is the placing provider's own handle plus ``placed_on`` and ``placement`` (the entry's
index), kept flat (see :mod:`.handle`). Providers used are recorded in ``hybrid-providers.json``
before anything starts, so :meth:`discover` knows whom to ask.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from codebolt_topo.capabilities import missing
from codebolt_topo.errors import ProviderError, TopoError
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.diff import ActionKind, Plan
from codebolt_topo.plan.placement import Forecast
from codebolt_topo.providers.base import (
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)
from codebolt_topo.providers.hybrid.handle import KEYS, HybridHandle, Placed
from codebolt_topo.providers.hybrid.rules import HybridRules
from codebolt_topo.providers.hybrid.settings import placed_spec, placement_entries

__all__ = ["HybridProvider"]

USED_FILE = "hybrid-providers.json"


class HybridProvider(HybridRules, Provider[HybridHandle]):
    """Delegates each node to one of the providers its placement list names."""

    def __init__(
        self, context: ProviderContext, providers: Mapping[str, Provider] | None = None
    ) -> None:
        super().__init__(context)
        #: Delegates by name; given ones (tests, benchmarks) win over the installed ones.
        self.delegates: dict[str, Provider] = dict(providers or {})
        self._capped = asyncio.Lock()
        self._found: dict[str, str] = {}

    def delegate(self, name: str) -> Provider:
        """The provider named ``name``, created on first use with this provider's context."""
        if name not in self.delegates:
            from codebolt_topo.providers.registry import load_provider

            self.delegates[name] = load_provider(name)(self.context)
        return self.delegates[name]

    def offers(self, spec: NodeSpec) -> tuple[frozenset[str], dict[str, str]]:
        """What the first entry that meets every requirement offers; if none does, everything
        some entry offers, so ``plan`` names only requirements no entry can meet."""
        offered: frozenset[str] = frozenset()
        reasons: dict[str, str] = {}
        for index, entry in enumerate(placement_entries(spec)):
            placed = placed_spec(spec, index)
            have, why = self.delegate(entry.provider).offers(placed)
            if not missing(placed.requires, have):
                return have, why
            offered |= have
            for family, reason in why.items():
                reasons[family] = f"{reasons[family]}; {reason}" if family in reasons else reason
        return offered, reasons

    async def create(self, launch: NodeLaunch) -> Placement[HybridHandle]:
        refusals = []
        entries = placement_entries(launch.spec)
        self._record_used(entry.provider for entry in entries)
        first = launch.placement or 0
        for index, entry in enumerate(entries):
            if index < first:
                refusals.append(f"{entry.provider}: passed over when planned")
                continue
            placed = placed_spec(launch.spec, index)
            provider = self.delegate(entry.provider)
            lacking = _lacking(provider, placed)
            if lacking is not None:
                refusals.append(f"{entry.provider}: {lacking}")
                continue
            # The plan counted its entry's nodes in plan order, the nodes it starts in
            # parallel included: counting again now would race with them.
            cap = None if index == launch.placement else entry.max_nodes
            try:
                if cap is None:
                    placement = await self._try(launch, placed, provider, None)
                else:
                    async with self._capped:  # count and create as one step: no overshoot
                        placement = await self._try(launch, placed, provider, cap)
            except TopoError as error:
                refusals.append(f"{entry.provider}: {error}")
                continue
            keys: Placed = {"placed_on": entry.provider, "placement": index}
            handle: HybridHandle = {**placement.handle, **keys}
            return Placement(handle=handle, host=placement.host, port=placement.port)
        raise ProviderError(
            f"node {launch.name!r}: no placement took it:\n    " + "\n    ".join(refusals)
        )

    async def forecast(self, plan: Plan, state: State) -> list[Forecast]:
        """Each hybrid node ``plan`` starts, placed in plan order by create's rules: an entry
        that offers its requirements, is under its ``max_nodes`` (this topology's nodes on that
        provider: those the state records and the plan keeps, those the plan starts there) and
        whose provider has room."""
        starting = plan.of_kind(ActionKind.CREATE, ActionKind.REPLACE)
        moving = {action.node for action in starting}
        counts: Counter[str] = Counter(
            self._placed_on(node)
            for name, node in state.nodes.items()
            if node.handle and name not in moving  # removed ones run until the creates are done
        )
        ours = []
        for action in starting:
            spec = plan.desired[action.node].spec
            if spec.provider == self.name:
                ours.append((action.node, spec))
            else:
                counts[spec.provider] += 1
        forecasts = []
        for name, spec in ours:
            forecast = await self._choose(name, spec, counts)
            if forecast.provider is not None:
                counts[forecast.provider] += 1
            forecasts.append(forecast)
        return forecasts

    async def _choose(self, name: str, spec: NodeSpec, counts: Counter[str]) -> Forecast:
        refusals = []
        for index, entry in enumerate(placement_entries(spec)):
            placed = placed_spec(spec, index)
            provider = self.delegate(entry.provider)
            lacking = _lacking(provider, placed)
            if lacking is not None:
                refusals.append(f"{entry.provider}: {lacking}")
            elif entry.max_nodes is not None and counts[entry.provider] >= entry.max_nodes:
                refusals.append(
                    f"{entry.provider}: no room (max_nodes {entry.max_nodes}, "
                    f"{counts[entry.provider]} placed or planned)"
                )
            elif not await provider.has_room(placed):
                refusals.append(f"{entry.provider}: no room (the provider says it is full)")
            else:
                return Forecast(name, entry.provider, index, tuple(refusals))
        return Forecast(name, None, None, tuple(refusals))

    def _placed_on(self, node: NodeState) -> str:
        """The provider that runs ``node``: the delegate that placed it, if hybrid did."""
        if node.provider == self.name:
            return str(node.handle.get("placed_on") or self.name)
        return node.provider

    async def _try(
        self, launch: NodeLaunch, placed: NodeSpec, provider: Provider, cap: int | None
    ) -> Placement:
        """Create the node on ``provider`` if it has room, and (``cap``) if it runs fewer than
        ``cap`` of this topology's nodes."""
        if not await provider.has_room(placed):
            raise ProviderError("no room (the provider says it is full)")
        if cap is not None:
            count = len({found.node for found in await provider.discover()})
            if count >= cap:
                raise ProviderError(f"no room (max_nodes {cap}, {count} placed)")
        return await provider.create(NodeLaunch(launch.name, placed, self._config(launch, placed)))

    def _config(self, launch: NodeLaunch, placed: NodeSpec) -> Any:
        """The launch config with the entry's overrides of bind address, port, env, workspace."""
        update: dict[str, Any] = {"host": placed.host, "port": placed.port or 0, "env": placed.env}
        if placed.workspace is not None and placed.workspace != launch.spec.workspace:
            update["workspace"] = str(self.context.base_dir / placed.workspace)
        return launch.config.model_copy(update=update)

    async def logs(self, handle: HybridHandle, *, follow: bool) -> AsyncIterator[str]:
        """The node's log as the provider that placed it reads it."""
        provider, inner = self._split(handle)
        async for line in provider.logs(inner, follow=follow):
            yield line

    async def inspect(self, handle: HybridHandle) -> Observation:
        provider, inner = self._split(handle)
        return await provider.inspect(inner)

    async def destroy(self, handle: HybridHandle, *, grace: float = 5.0) -> None:
        provider, inner = self._split(handle)
        await provider.destroy(inner, grace=grace)

    async def discover(self) -> list[Discovered[HybridHandle]]:
        """Every node of this topology on the providers hybrid used, with their own handles
        (which match directly placed nodes too: the engine skips whatever its state records)."""
        found = []
        for name in self._used():
            for item in await self.delegate(name).discover():
                self._found[json.dumps(item.handle, sort_keys=True)] = name
                found.append(item)
        return found

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        """Asks the delegate that placed ``sender`` (both unwrapped if hybrid-placed); without
        the sender's placement, the URL every delegate in use agrees on, else None."""
        peer = self._unwrap(peer)
        if sender is not None and sender.handle.get("placed_on"):
            sender = self._unwrap(sender)
            return self.delegate(sender.provider).peer_url(peer, sender)
        urls = {self.delegate(name).peer_url(peer) for name in self._used()}
        return urls.pop() if len(urls) == 1 else None

    def _unwrap(self, node: NodeState) -> NodeState:
        """``node`` as the delegate that placed it sees it (itself when not hybrid-placed)."""
        if node.provider != self.name or "placed_on" not in node.handle:
            return node
        inner = {k: v for k, v in node.handle.items() if k not in KEYS}
        return node.model_copy(update={"provider": node.handle["placed_on"], "handle": inner})

    def _split(self, handle: HybridHandle) -> tuple[Provider, dict[str, Any]]:
        name = handle.get("placed_on") or self._found.get(json.dumps(handle, sort_keys=True))
        if name is None:
            raise ProviderError(f"hybrid: cannot tell which provider placed {handle}")
        return self.delegate(name), {k: v for k, v in handle.items() if k not in KEYS}

    def _used_path(self) -> Path:
        return self.context.runtime_dir / USED_FILE

    def _used(self) -> list[str]:
        try:
            names: list[str] = json.loads(self._used_path().read_text())
        except (OSError, ValueError):
            return []
        return names

    def _record_used(self, names: Any) -> None:
        used = self._used()
        wanted = used + [name for name in dict.fromkeys(names) if name not in used]
        if wanted != used:
            path = self._used_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(wanted))


def _lacking(provider: Provider, placed: NodeSpec) -> str | None:
    """What of ``placed``'s requirements ``provider`` does not offer, with why, or None."""
    offered, reasons = provider.offers(placed)
    lacking = missing(placed.requires, offered)
    if not lacking:
        return None
    why = "; ".join(reasons.get(need.split(":")[0], "not offered") for need in lacking)
    return f"lacks {', '.join(lacking)} ({why})"
