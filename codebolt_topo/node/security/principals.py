"""Whose request is this: the *owner* a request carries, and who may claim it (pure).

Tokens say which peer is calling (one token per edge, see
:mod:`~codebolt_topo.node.security.auth`), but a request often crosses several hops: in a hub,
``dev-a -> orchestrator -> worker``, the worker's caller is always the orchestrator. So every
``exec``/``attach`` carries an ``owner``: the node where it entered the topology. The entry node
stamps its own name (its admin may name another owner); every later hop checks the claim against
the peer that delivered it, using the graph's *upstream* sets (who can send work to whom, directly
or through others; the planner pushes the part a node needs as ``RuntimeConfig.upstream``):

* a peer may carry requests of its own and of the nodes upstream of it (it relays their work
  anyway), never of anyone else: ``dev-b``'s token cannot carry a request owned by ``dev-a``,
  while the orchestrator relays for every developer;
* a request reaches a job the executing node holds (a duplicate ``exec``, an ``attach``, and
  through them cancel, signals and stdin) only when the job's owner is the request's owner or
  upstream of it. In a chain ``a -> b -> c``, ``b`` may follow the jobs ``a`` started (they pass
  through ``b`` anyway); in a hub, one developer can neither watch, steer nor kill another's job,
  even knowing its request id. In a mesh every node is upstream of every other: no isolation.

The owner does not depend on the path a request takes, so a resume through another route still
finds its job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["OWNER", "claim_owner", "job_refusal", "upstream_sets"]

OWNER = "owner"
"""The request field holding the owner."""
Upstream = Mapping[str, Iterable[str]]


def claim_owner(
    message: dict[str, Any], principal: str, node: str, *, admin: bool, upstream: Upstream
) -> str:
    """Check ``message``'s owner claim for ``principal`` and stamp it; returns a refusal or "".

    ``admin``: the caller holds this node's admin token (a local client): the owner defaults to
    ``node`` and any claim stands. A peer's request without an owner is its own.
    """
    claimed = message.get(OWNER)
    if claimed is not None and not isinstance(claimed, str):
        return f"node {node!r}: the request's owner must be a string"
    if admin:
        message[OWNER] = claimed or node
        return ""
    if claimed is None or claimed == principal:
        message[OWNER] = principal
        return ""
    if claimed in set(upstream.get(principal, ())):
        return ""
    return (
        f"node {node!r}: {principal!r} may not act for {claimed!r} (only for itself or for "
        f"nodes upstream of it)"
    )


def job_refusal(node: str, key: str, held_owner: str | None, owner: str, upstream: Upstream) -> str:
    """A refusal when a request owned by ``owner`` may not reach job ``key`` owned by
    ``held_owner`` (neither the same owner nor upstream of it); "" when it may."""
    if held_owner is None or held_owner == owner or held_owner in set(upstream.get(owner, ())):
        return ""
    return f"node {node!r}: request {key!r} belongs to another owner"


def upstream_sets(edges: Iterable[tuple[str, str]]) -> dict[str, dict[str, list[str]]]:
    """For every node X: the upstream set of X and of every node upstream of X (what X needs).

    ``edges`` are (source, target) pairs. Adding a node changes only the sets of the nodes
    downstream of it, so re-applying a grown topology reconfigures no one else.
    """
    inbound: dict[str, set[str]] = {}
    for source, target in edges:
        inbound.setdefault(target, set()).add(source)
        inbound.setdefault(source, set())
    upstream: dict[str, list[str]] = {}
    for name in inbound:
        seen: set[str] = set()
        stack = list(inbound[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(inbound[current])
        seen.discard(name)
        upstream[name] = sorted(seen)
    return {
        name: {n: upstream[n] for n in sorted({name, *upstream[name]}) if upstream[n]}
        for name in inbound
    }
