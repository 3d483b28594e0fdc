"""What the hybrid provider records for a node in the state file.

The handle of the provider that placed the node, plus :class:`Placed`'s keys, kept flat on
purpose: that provider's ``discover`` reports its nodes with its own handle keys, and
``Discovered.same_as`` must recognise a hybrid-placed node from them, or the engine would take
it for an orphan and remove it. So a hybrid handle is any provider's handle plus these keys.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["KEYS", "HybridHandle", "Placed"]


class Placed(TypedDict):
    """Which provider placed the node (``placed_on``) and by which entry of its placement list
    (``placement``, an index)."""

    placed_on: str
    placement: int


#: The placing provider's handle with :class:`Placed`'s keys added.
HybridHandle = dict[str, Any]

#: The keys hybrid adds (removed again before the handle goes back to the placing provider).
KEYS = tuple(Placed.__annotations__)
