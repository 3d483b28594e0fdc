"""What the views and the watch ask of joined nodes (``provider: joined``): which nodes nothing
can dial, which apply has placed, and a handle as shown. Apart from ``engine/joining.py`` (offers,
credentials, certificates) so that a cold ``status`` does not import what making an offer takes
(the certificate authority, the joined provider: ~25 ms)."""

from __future__ import annotations

from typing import Any

from codebolt_topo.model.discovery import rules_of
from codebolt_topo.model.state import Lifecycle, NodeState

__all__ = ["dials_out_only", "joined_and_placed", "shown_handle"]


def dials_out_only(node: NodeState) -> bool:
    """Whether nothing can dial ``node`` (a joined node): its edges are opened by it."""
    return bool(getattr(rules_of(node.provider), "dials_out_only", False))


def joined_and_placed(node: NodeState) -> bool:
    """Whether ``node`` is a joined node apply has placed: running on its machine, or away
    (STOPPED: it left, and may join again with what it stored). Either way its neighbours
    keep its edges and its join point its offer."""
    return dials_out_only(node) and node.lifecycle in (Lifecycle.RUNNING, Lifecycle.STOPPED)


def shown_handle(handle: dict[str, Any]) -> dict[str, Any]:
    """A handle as status and describe show it: a joined node's sealed offer (kilobytes of
    ciphertext, of use to its join point only) left out."""
    return {key: value for key, value in handle.items() if key != "offer"}
