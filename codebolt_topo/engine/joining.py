"""Joined nodes, the orchestrator's side: their offers, their credentials, renewing them.

A node declared ``provider: joined`` runs on a developer's machine that nothing can dial
(providers/joined). For each one, every apply makes sure that one of its neighbours, its *join
point* (a node this machine runs, serving TLS, that the joined machine can reach), holds its
offer: the node's whole launch config (a fresh certificate naming it, its edge tokens, the
URLs of every edge it opens) sealed with its one-time join secret (wire/joining.py). The offer
is recorded in the node's handle and pushed to the join point with its runtime config
(``RuntimeConfig.joins``); it is sealed again only when what it holds would change, so a
re-apply that changes nothing changes no node.

``codebolt state credentials NODE`` writes the credentials file (0600) a developer joins
with; ``--renew`` issues a new secret (the old one is then refused as revoked, and a machine
that joined with it keeps running with its old wiring until it joins again) and re-applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from codebolt_topo.credentials import write_secret
from codebolt_topo.engine.certificates import identity_for
from codebolt_topo.engine.joined_nodes import dials_out_only, joined_and_placed
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.desired import DesiredNode, stable_hash
from codebolt_topo.providers.joined.provider import JoinedProvider
from codebolt_topo.wire.config import JoinOffer, LaunchConfig
from codebolt_topo.wire.joining import (
    JoinCredentials,
    new_join_secret,
    proof_digest,
    seal_offer,
)

if TYPE_CHECKING:
    from codebolt_topo.engine.runner import Engine

__all__ = [
    "credentials",
    "join_offers_for",
    "prepare_offers",
    "renew_secret",
    "write_credentials",
]


def join_offers_for(state: State, join_point: str) -> dict[str, JoinOffer]:
    """The offers ``join_point`` holds: one per joined node that joins through it."""
    return {
        name: JoinOffer.model_validate(node.handle["offer"])
        for name, node in sorted(state.nodes.items())
        if node.handle.get("join_point") == join_point and "offer" in node.handle
    }


def _join_point(state: State, desired: DesiredNode) -> NodeState | None:
    """The neighbour ``desired`` joins through: the one it joined through before while it is
    still a running neighbour, else the first running one by name."""
    names = sorted({*desired.peers, *desired.inbound})
    running = [
        state.nodes[n]
        for n in names
        if n in state.nodes
        and state.nodes[n].lifecycle is Lifecycle.RUNNING
        and state.nodes[n].url is not None
        and not dials_out_only(state.nodes[n])
    ]
    current = state.nodes[desired.name].handle.get("join_point")
    for node in running:
        if node.name == current:
            return node
    return running[0] if running else None


def prepare_offers(
    engine: Engine, state: State, desired: Mapping[str, DesiredNode]
) -> dict[str, str]:
    """Make sure every running joined node of ``desired`` has an offer at a join point (before
    the join points are configured); returns the nodes that cannot have one, and why."""
    failures = {}
    for name, wanted in sorted(desired.items()):
        node = state.nodes.get(name)
        if node is None or not joined_and_placed(node):
            continue
        problem = _prepare(engine, state, wanted, node)
        if problem is not None:
            failures[name] = problem
    return failures


def _prepare(engine: Engine, state: State, desired: DesiredNode, node: NodeState) -> str | None:
    point = _join_point(state, desired)
    if point is None:
        return f"joined node {node.name!r}: no running neighbour to join through yet"
    if point.pinned_ca is None:
        return (
            f"joined node {node.name!r}: its join point {point.name!r} serves plain WebSocket "
            "(it was started before it had a joined neighbour, or listens on loopback); "
            f"replace it (codebolt apply --replace {point.name}) so that it serves TLS"
        )
    peers, unreachable = engine.peer_links(state, desired)
    if unreachable:
        return f"joined node {node.name!r} cannot reach {', '.join(unreachable)}"
    if node.join_credential is None:
        node.join_credential = new_join_secret()
    kept = {name: link.model_copy(update={"keep": True}) for name, link in peers.items()}
    runtime = engine.runtime_config(state, desired, kept).model_copy(update={"generation": 1})
    proof = proof_digest(node.join_credential)
    made_from = stable_hash(
        {"runtime": runtime.model_dump(mode="json"), "proof": proof, "point": point.name}
    )
    if node.handle.get("offer_hash") == made_from:
        return None
    identity = identity_for(state, node.name, serve=False)
    launch = LaunchConfig(
        topology=state.topology,
        node=node.name,
        host="127.0.0.1",
        port=0,
        admin_token_digest="",  # the joining machine makes its own admin token
        workspace="",
        state_dir="",
        env=desired.spec.env,
        runtime=runtime,
        tls=identity,
    )
    revoked = list((node.handle.get("offer") or {}).get("revoked", []))
    offer = JoinOffer(
        proof_digest=proof,
        sealed=seal_offer(node.join_credential, launch.model_dump_json()),
        revoked=revoked,
    )
    if "offer" in node.handle:
        engine.progress(
            f"{node.name}: its offer at {point.name} now holds new wiring; a machine that "
            f"already joined keeps its old wiring until it joins again with renewed "
            f"credentials (codebolt state credentials {node.name} --renew)"
        )
    node.handle.update(
        join_point=point.name, offer=offer.model_dump(mode="json"), offer_hash=made_from
    )
    return None


def credentials(state: State, name: str) -> JoinCredentials:
    """The credentials file's content for joined node ``name``."""
    node = state.nodes.get(name)
    if node is None:
        raise StateError(f"node {name!r} is not in the state (apply the topology first)")
    if not dials_out_only(node):
        raise ConfigError(
            f"node {name!r} is a {node.provider} node: only joined nodes have join credentials"
        )
    point = state.nodes.get(str(node.handle.get("join_point", "")))
    if node.join_credential is None or point is None or state.ca is None or point.url is None:
        raise StateError(
            f"joined node {name!r} has no offer yet: apply the topology (its join point "
            "must be running)"
        )
    url = JoinedProvider.url_of(point)
    return JoinCredentials(
        topology=state.topology,
        node=name,
        join_point=point.name,
        url=url or point.url,
        ca=state.ca.cert,
        secret=node.join_credential,
    )


def write_credentials(made: JoinCredentials, path: Path) -> None:
    """Write ``made`` to ``path``, 0600 from its first byte (it is a one-time bearer secret)."""
    write_secret(path, made.model_dump_json(indent=2) + "\n")


def renew_secret(state: State, name: str) -> None:
    """Give joined node ``name`` a new join secret and drop its edge tokens (the caller makes
    new ones and rewires its neighbours): the old secret is refused as revoked, and a machine
    that joined with it holds tokens no edge accepts any more."""
    node = state.nodes.get(name)
    if node is None or not dials_out_only(node):
        raise ConfigError(f"node {name!r} is not a joined node of this topology")
    offer = node.handle.get("offer")
    if node.join_credential is not None and isinstance(offer, dict):
        offer["revoked"] = [*offer.get("revoked", []), proof_digest(node.join_credential)][-16:]
    node.join_credential = new_join_secret()
    node.handle.pop("offer_hash", None)
    for edge in [e for e in state.edge_tokens if name in e.split("->")]:
        del state.edge_tokens[edge]  # new ones at once: the old machine is cut off
