"""Which providers exist, found through entry points and imported only when used.

Built-in providers are declared in this project's own ``pyproject.toml`` under the
``codebolt_topo.providers`` entry-point group, exactly like third-party ones, so there is one
registration path. Listing names never imports a provider module (and so never imports docker,
e2b or asyncssh).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from codebolt_topo.errors import ConfigError

if TYPE_CHECKING:
    from codebolt_topo.providers.base import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderInfo",
    "describe_providers",
    "load_provider",
    "provider_names",
]

ENTRY_POINT_GROUP = "codebolt_topo.providers"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_names() -> list[str]:
    """Names of every installed provider, sorted."""
    return sorted(_entry_points())


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
        entry_point = _entry_points()[name]
        try:
            provider = load_provider(name)
        except ImportError as error:
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
        entry_point = _entry_points()[name]
    except KeyError:
        known = ", ".join(provider_names()) or "none"
        raise ConfigError(f"unknown provider {name!r} (installed: {known})") from None
    provider_class: type[Provider] = entry_point.load()
    return provider_class
