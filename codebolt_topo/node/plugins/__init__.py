"""Loading node plugins by name through entry points and keeping pluggy in step with config.

:class:`PluginHost` owns the node's :class:`pluggy.PluginManager`. :meth:`PluginHost.apply` takes
the ``plugins`` mapping of a :class:`~codebolt_topo.wire.config.RuntimeConfig` and enables,
re-configures and disables plugins so that the registered set equals it. Classes are imported
only when first enabled, so a node that runs no plugin imports none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import pluggy

from codebolt_topo.errors import ConfigError
from codebolt_topo.node.hooks import PROJECT, NodeContext, NodeHookSpecs

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "load_plugin_class"]

ENTRY_POINT_GROUP = "codebolt_topo.node_plugins"
log = logging.getLogger(__name__)


def load_plugin_class(name: str) -> Callable[[], object]:
    """The factory registered under ``name`` in :data:`ENTRY_POINT_GROUP`."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    for entry in found:
        factory: Callable[[], object] = entry.load()
        return factory
    known = sorted(e.name for e in entry_points(group=ENTRY_POINT_GROUP))
    raise ConfigError(f"unknown node plugin {name!r} (installed: {', '.join(known) or 'none'})")


class PluginHost:
    """The plugin manager of one node plus the enabled set and its settings."""

    def __init__(
        self,
        context: NodeContext,
        loader: Callable[[str], Callable[[], object]] = load_plugin_class,
    ) -> None:
        self.context = context
        self._loader = loader
        self._factories: dict[str, Callable[[], object]] = {}
        self._settings: dict[str, dict[str, Any]] = {}
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(NodeHookSpecs)

    @property
    def hook(self) -> Any:
        """``manager.hook``: call as ``host.hook.codebolt_node_x(node=..., ...)``."""
        return self.manager.hook

    @property
    def enabled(self) -> list[str]:
        """Names of enabled plugins, sorted."""
        return sorted(self._settings)

    def apply(self, wanted: Mapping[str, Mapping[str, Any]]) -> None:
        """Make the enabled set equal ``wanted``. Unknown names raise before anything changes."""
        for name in wanted:
            if name not in self._settings and name not in self._factories:
                self._factories[name] = self._loader(name)
        for name in [n for n in self._settings if n not in wanted]:
            self._disable(name)
        for name, settings in wanted.items():
            if name not in self._settings:
                self._enable(name, dict(settings))
            elif self._settings[name] != settings:
                self._settings[name] = dict(settings)
                self._only(name, "codebolt_node_settings")(
                    node=self.context, name=name, settings=dict(settings)
                )

    def close(self) -> None:
        """Disable every plugin (the node is stopping)."""
        for name in list(self._settings):
            self._disable(name)

    def _only(self, name: str, hook: str) -> Any:
        others = [p for p in self.manager.get_plugins() if self.manager.get_name(p) != name]
        return self.manager.subset_hook_caller(hook, remove_plugins=others)

    def _enable(self, name: str, settings: dict[str, Any]) -> None:
        plugin = self._factories[name]()
        self.manager.register(plugin, name=name)
        try:
            self._only(name, "codebolt_node_enable")(
                node=self.context, name=name, settings=settings
            )
        except Exception:
            self.manager.unregister(name=name)
            raise
        self._settings[name] = settings
        log.info("plugin %s enabled", name)

    def _disable(self, name: str) -> None:
        try:
            self._only(name, "codebolt_node_disable")(node=self.context, name=name)
        except Exception:
            log.exception("plugin %s failed while disabling", name)
        self.manager.unregister(name=name)
        del self._settings[name]
        log.info("plugin %s disabled", name)
