"""Names and labels of everything the swarm provider creates, derived from the topology.

Services, secrets, networks and relay containers carry the docker provider's labels (topology,
lineage, state directory, node, kind), so ``discover`` finds what an interrupted run left and
``destroy`` removes exactly what was created. A service name is also the DNS name its peers dial
on the overlay network, so it must be a DNS label (63 characters at most): a long topology name
is cut and a digest of the whole keeps names apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from codebolt_topo.providers.docker.names import Names

__all__ = ["DNS_LABEL", "SwarmNames"]

DNS_LABEL = 63


def _label(name: str) -> str:
    """``name`` as a DNS label: itself when short enough, else cut with a digest appended."""
    if len(name) <= DNS_LABEL:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: DNS_LABEL - 11]}-{digest}"


@dataclass(frozen=True, slots=True)
class SwarmNames(Names):
    """Swarm names for one topology instance; the labels are the docker provider's."""

    @property
    def network(self) -> str:
        """The topology's attachable overlay: services reach each other by service name."""
        return f"{self.prefix}-swarm"

    @property
    def sandbox_network(self) -> str:
        """The internal overlay of sandbox nodes: no route out, only the topology's services."""
        return f"{self.prefix}-swarm-sandbox"

    def service(self, node: str) -> str:
        return _label(f"{self.prefix}-{node}")

    def relay(self, node: str) -> str:
        """The relay container on this machine that forwards its loopback port to the service."""
        return f"{self.service(node)}-relay"

    def secret(self, node: str, digest: str) -> str:
        """A secret's name: secrets cannot change, so each launch config gets its own."""
        return f"{self.service(node)}-launch-{digest[:12]}"
