"""The hybrid provider: place a node on the first provider of its ``placement:`` list that can.

How a user scales progressively: ``placement: [local, docker, cloud-vm]`` keeps nodes on the
laptop while it has room, then spills to containers, then to VMs, by editing YAML only. An entry
is taken when its provider offers every ``requires:`` of the node (as placed with that entry's
overrides), has room (the entry's ``max_nodes`` and the provider's own :meth:`has_room`), and
actually starts the node; a :class:`TopoError` from ``create`` moves on to the next entry. The
refusal of each entry is kept, so a node no entry takes fails with every reason at once.

The handle is the placing provider's own handle plus ``placed_on`` and ``placement`` (the entry's
index). It is kept flat on purpose: a provider's ``discover`` reports its nodes with its own
handle keys, and :meth:`Discovered.same_as` must recognise a hybrid-placed node from them, or
the engine would take it for an orphan and remove it. Providers used are recorded in
``hybrid-providers.json`` before anything starts, so :meth:`discover` knows whom to ask.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebolt_topo.capabilities import missing
from codebolt_topo.errors import ProviderError, TopoError
from codebolt_topo.model.state import NodeState
from codebolt_topo.model.topology import NodeSpec, PlacementEntry
from codebolt_topo.providers.base import (
    Category,
    Discovered,
    NodeLaunch,
    Observation,
    Placement,
    Provider,
    ProviderContext,
)

__all__ = ["HybridProvider"]

USED_FILE = "hybrid-providers.json"
KEYS = ("placed_on", "placement")


class HybridProvider(Provider):
    """Delegates each node to one of the providers its placement list names."""

    name = "hybrid"
    category = Category.HYBRID

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
        for index, entry in enumerate(spec.placement_entries()):
            placed = spec.placed_spec(index)
            have, why = self.delegate(entry.provider).offers(placed)
            if not missing(placed.requires, have):
                return have, why
            offered |= have
            for family, reason in why.items():
                reasons[family] = f"{reasons[family]}; {reason}" if family in reasons else reason
        return offered, reasons

    async def create(self, launch: NodeLaunch) -> Placement:
        refusals = []
        self._record_used(entry.provider for entry in launch.spec.placement_entries())
        for index, entry in enumerate(launch.spec.placement_entries()):
            placed = launch.spec.placed_spec(index)
            provider = self.delegate(entry.provider)
            offered, reasons = provider.offers(placed)
            lacking = missing(placed.requires, offered)
            if lacking:
                why = "; ".join(reasons.get(need.split(":")[0], "not offered") for need in lacking)
                refusals.append(f"{entry.provider}: lacks {', '.join(lacking)} ({why})")
                continue
            try:
                if entry.max_nodes is None:
                    placement = await self._try(launch, placed, provider, entry)
                else:
                    async with self._capped:  # count and create as one step: no overshoot
                        placement = await self._try(launch, placed, provider, entry)
            except TopoError as error:
                refusals.append(f"{entry.provider}: {error}")
                continue
            handle = {**placement.handle, "placed_on": entry.provider, "placement": index}
            return Placement(handle=handle, host=placement.host, port=placement.port)
        raise ProviderError(
            f"node {launch.name!r}: no placement took it:\n    " + "\n    ".join(refusals)
        )

    async def _try(
        self, launch: NodeLaunch, placed: NodeSpec, provider: Provider, entry: PlacementEntry
    ) -> Placement:
        if not await provider.has_room(placed):
            raise ProviderError("no room (the provider says it is full)")
        if entry.max_nodes is not None:
            count = len({found.node for found in await provider.discover()})
            if count >= entry.max_nodes:
                raise ProviderError(f"no room (max_nodes {entry.max_nodes}, {count} placed)")
        return await provider.create(NodeLaunch(launch.name, placed, self._config(launch, placed)))

    def _config(self, launch: NodeLaunch, placed: NodeSpec) -> Any:
        """The launch config with the entry's overrides of bind address, port, env, workspace."""
        update: dict[str, Any] = {"host": placed.host, "port": placed.port or 0, "env": placed.env}
        if placed.workspace is not None and placed.workspace != launch.spec.workspace:
            update["workspace"] = str(self.context.base_dir / placed.workspace)
        return launch.config.model_copy(update=update)

    async def inspect(self, handle: dict[str, Any]) -> Observation:
        provider, inner = self._split(handle)
        return await provider.inspect(inner)

    async def destroy(self, handle: dict[str, Any], *, grace: float = 5.0) -> None:
        provider, inner = self._split(handle)
        await provider.destroy(inner, grace=grace)

    async def discover(self) -> list[Discovered]:
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

    def _split(self, handle: dict[str, Any]) -> tuple[Provider, dict[str, Any]]:
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
