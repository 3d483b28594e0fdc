"""What the joined provider records for a node in the state file: where it joins, and its offer."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["JoinedHandle"]


class JoinedHandle(TypedDict):
    """``joined`` marks the node as one the operator does not run. ``join_point`` is the
    neighbour that holds its ``offer`` (a :class:`~codebolt_topo.wire.config.JoinOffer` as
    JSON: the launch config sealed with the node's join secret), and ``offer_hash`` what the
    offer was made from, so a re-apply that changes nothing seals nothing new."""

    joined: bool
    join_point: NotRequired[str]
    offer: NotRequired[dict[str, Any]]
    offer_hash: NotRequired[str]
