"""Which providers exist, found through entry points and imported only when used.

Built-in providers are declared in this project's own ``pyproject.toml`` under the
``codebolt_topo.providers`` entry-point group, exactly like third-party ones, so there is one
registration path (:mod:`codebolt_topo.model.discovery`, which the loader uses too). An entry
point names a provider's rules; :func:`load_provider` asks them for the provider class. Listing
names never imports a provider module, and loading rules never imports docker, e2b or asyncssh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.discovery import (
    ENTRY_POINT_GROUP,
    entry_points_by_name,
    provider_names,
    refresh,
)
from codebolt_topo.providers.rules import ProviderRules

if TYPE_CHECKING:
    from codebolt_topo.providers.base import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderInfo",
    "describe_providers",
    "load_provider",
    "provider_names",
    "refresh",
]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    category: str
    capabilities: tuple[str, ...]
    module: str


def describe_providers() -> list[ProviderInfo]:
    """Every installed provider with its category and capabilities (imports each module,
    but not the SDKs they use: those are imported when a node is placed)."""
    rows = []
    for name in provider_names():
        entry_point = entry_points_by_name()[name]
        try:
            provider = load_provider(name)
        except (ImportError, ConfigError) as error:
            rows.append(ProviderInfo(name, "unavailable", (), f"{entry_point.value} ({error})"))
            continue
        offered, _ = provider.base_offers()
        rows.append(
            ProviderInfo(name, provider.category.value, tuple(sorted(offered)), entry_point.value)
        )
    return rows


def load_provider(name: str) -> type[Provider]:
    """Import and return the provider class registered under ``name``."""
    try:
        entry_point = entry_points_by_name()[name]
    except KeyError:
        known = ", ".join(provider_names()) or "none"
        raise ConfigError(f"unknown provider {name!r} (installed: {known})") from None
    rules = entry_point.load()
    if not (isinstance(rules, type) and issubclass(rules, ProviderRules)):
        raise ConfigError(
            f"provider {name!r}: entry point {entry_point.value} names neither "
            "provider rules nor a provider class"
        )
    problem = rules.unavailable()
    if problem is not None:
        raise ConfigError(problem)  # not an ImportError deep inside apply
    return rules.provider_class()
