"""What a provider sees of a node right now (a fact the planner compares with the state).

Providers produce it (``inspect``); the planner turns a dead node into a replacement with its
reason, the reconciler into a restart or not. Kept here, below both, as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Observation"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What a provider sees of a node right now."""

    alive: bool
    reason: str = ""
    #: The node is gone because it was stopped on request (a graceful daemon exit), not because
    #: it crashed: ``restart: on-failure`` leaves it stopped. False where a provider cannot tell.
    clean_exit: bool = False
    #: The node's machine itself no longer exists (a removed container, an ended sandbox), so
    #: nothing of it, its narrative store included, can be read any more (engine/history.py
    #: then says its history is already lost instead of refusing to remove it). False where a
    #: provider cannot tell.
    gone: bool = False
    #: Where the node runs now, when its provider can say more than its handle does (the
    #: machine of a Swarm task, which Swarm may have moved since); "" otherwise. ``status``
    #: shows it.
    where: str = ""
