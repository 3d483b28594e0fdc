"""The default rules of a provider: what ``validate`` and ``plan`` ask of it, answered "nothing".

:class:`ProviderRules` implements both interfaces the lower layers define
(:class:`~codebolt_topo.model.rules.NodeRules` for the loader,
:class:`~codebolt_topo.plan.provider_checks.TopologyRules` for the planner) with class attributes
and class methods a provider overrides where it has something to say. :class:`Provider
<codebolt_topo.providers.base.Provider>` derives from it, so a provider can register its
provider class itself; the built-in ones register a rules class of their own (``rules.py`` in
their package) that names the provider class, so that ``validate`` imports no runtime code.

The core install serves the local provider only; a provider whose runtime needs a heavy SDK
(docker, asyncssh, e2b) names it in ``needs`` and the extra that installs it in ``extra``.
:meth:`ProviderRules.unavailable` tells, without importing anything, that it is missing and
which ``pip install`` line adds it: ``validate`` says so at the node that names the provider,
and loading the provider refuses with the same words instead of a traceback at apply.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.rules import Category

if TYPE_CHECKING:
    from codebolt_topo.model.settings import NodeSettings
    from codebolt_topo.model.topology import NodeSpec
    from codebolt_topo.plan.provider_checks import Finding, TopologyView
    from codebolt_topo.providers.base import Provider

__all__ = ["DISTRIBUTION", "ProviderRules"]

#: The distribution whose extras install the providers' SDKs.
DISTRIBUTION = "codebolt-topo"


class ProviderRules:
    """Rules of a provider that adds no settings and checks nothing."""

    name: ClassVar[str]
    category: ClassVar[Category]
    settings: ClassVar[type[NodeSettings] | None] = None
    accepts: ClassVar[frozenset[str]] = frozenset()
    #: Whether its node daemons listen on this machine's own interfaces, at the node's ``host``
    #: and ``port``: two such nodes cannot take one port, and a container reaches one only when
    #: it is not bound to loopback.
    host_network: ClassVar[bool] = False
    #: Whether a node's explicit ``port`` is taken on this machine although the daemon listens
    #: elsewhere (docker publishes it on 127.0.0.1): it clashes like a ``host_network`` port.
    publishes_host_ports: ClassVar[bool] = False
    #: Whether its node daemons run on another machine than this one, so their server speaks
    #: TLS with the certificate the topology issues them (engine/certificates.py).
    serves_tls: ClassVar[bool] = False
    #: Whether nothing can dial its nodes (they run on machines behind NAT: joined): every
    #: edge touching one is opened by it, and the orchestrator sees it through its neighbours.
    dials_out_only: ClassVar[bool] = False
    #: Modules its runtime imports that the core install does not bring (top-level names).
    needs: ClassVar[tuple[str, ...]] = ()
    #: The extra of this distribution that installs them (``pip install 'codebolt-topo[X]'``).
    extra: ClassVar[str | None] = None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this provider cannot place nodes in this install, with the line to run; None
        when it can. Looks for the modules without importing them (validate stays fast)."""
        missing = [name for name in cls.needs if importlib.util.find_spec(name) is None]
        if not missing:
            return None
        install = f"pip install '{DISTRIBUTION}[{cls.extra}]'" if cls.extra else "install them"
        return (
            f"provider {cls.name!r} needs {', '.join(missing)}, which this install lacks: {install}"
        )

    @classmethod
    def serves_tls_for(cls, spec: NodeSpec) -> bool:
        """Whether the server of a node placed with ``spec`` speaks TLS (``serves_tls``
        unless the provider decides per node)."""
        return cls.serves_tls

    @classmethod
    def check_node(cls, spec: NodeSpec) -> str | None:
        """What a node of this provider lacks or may not have, or None."""
        return None

    @classmethod
    def check_topology(cls, view: TopologyView) -> Iterable[Finding]:
        """What is wrong with the topology as this provider sees it (edges its nodes cannot
        use, settings it refuses), each at the field to change."""
        return ()

    @classmethod
    def provider_class(cls) -> type[Provider]:
        """The class that places this provider's nodes (the registry instantiates it)."""
        raise ConfigError(f"provider {cls.name!r}: its rules name no provider class")
