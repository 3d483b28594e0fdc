"""Which providers are installed, and their rules, from the ``codebolt_topo.providers`` entry
points.

Built-in providers are declared in this project's ``pyproject.toml`` exactly like third-party
ones, so there is one way in. Each entry point names the provider's rules (:class:`NodeRules`):
built-in providers keep them in a small module of their own, so ``validate`` never imports a
provider's runtime (nor docker, asyncssh or e2b). A provider's rules are imported the first time
they are asked for, and kept; :func:`refresh` forgets everything (tests that install a provider
on the fly).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from codebolt_topo.model.rules import Category, NodeRules

__all__ = [
    "ENTRY_POINT_GROUP",
    "entry_points_by_name",
    "installed_rules",
    "provider_names",
    "refresh",
    "rules_for",
    "rules_of",
]

ENTRY_POINT_GROUP = "codebolt_topo.providers"
_ORDER = list(Category)


@cache
def entry_points_by_name() -> dict[str, EntryPoint]:
    """Every installed provider's entry point, by provider name (nothing imported)."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def provider_names() -> list[str]:
    """Names of every installed provider, sorted."""
    return sorted(entry_points_by_name())


@cache
def rules_of(name: str) -> NodeRules | None:
    """The rules of the installed provider ``name``; None when there is none, or when it fails
    to import or names something else (using it then names the error: the registry)."""
    entry = entry_points_by_name().get(name)
    if entry is None:
        return None
    try:
        rules = entry.load()
    except (ImportError, AttributeError):
        return None
    return rules if isinstance(rules, NodeRules) else None


def rules_for(names: Iterable[str]) -> dict[str, NodeRules]:
    """The rules of the named providers that are installed, nearest first (by category, then
    name): the order of their settings among a node's fields and of their checks."""
    found = [(name, rules) for name in set(names) if (rules := rules_of(name)) is not None]
    found.sort(key=lambda item: (_ORDER.index(item[1].category), item[0]))
    return dict(found)


def installed_rules() -> dict[str, NodeRules]:
    """The rules of every installed provider, in :func:`rules_for` order."""
    return rules_for(entry_points_by_name())


def refresh() -> None:
    """Forget what was found, so the next call looks at the installed distributions again."""
    importlib.invalidate_caches()
    entry_points_by_name.cache_clear()
    rules_of.cache_clear()
