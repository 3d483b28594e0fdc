"""Names and labels of everything the docker provider creates, derived from the topology.

Every container, network and volume carries the same labels (topology, lineage, state directory,
node), so a later run can find what an interrupted one left behind and ``destroy`` can remove
exactly what was created, never a user's own containers or another copy of the same topology.
Names are deterministic too: the engine refuses a second container with the same name, which is
the last guard against duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

from codebolt_topo.providers.base import ProviderContext

__all__ = [
    "CONTAINER_PORT",
    "LABEL_KIND",
    "LABEL_LINEAGE",
    "LABEL_MANAGED",
    "LABEL_NODE",
    "LABEL_STATE_DIR",
    "LABEL_TOPOLOGY",
    "MANAGED_BY",
    "WORKSPACE",
    "Names",
]

LABEL_MANAGED = "org.codebolt.managed-by"
LABEL_TOPOLOGY = "org.codebolt.topology"
LABEL_LINEAGE = "org.codebolt.lineage"
LABEL_STATE_DIR = "org.codebolt.state-dir"
LABEL_NODE = "org.codebolt.node"
LABEL_KIND = "org.codebolt.kind"
MANAGED_BY = "codebolt-topo"

#: Port of the ProviderServer inside every container; the host reaches it through a published port.
CONTAINER_PORT = 3100
WORKSPACE = "/workspace"


@dataclass(frozen=True, slots=True)
class Names:
    """Docker names and label sets for one topology instance (one state file)."""

    context: ProviderContext

    @property
    def prefix(self) -> str:
        return f"codebolt-{self.context.topology}-{self.context.lineage[:8]}"

    @property
    def network(self) -> str:
        """The topology's bridge network: containers reach each other by node name."""
        return self.prefix

    @property
    def sandbox_network(self) -> str:
        """The internal network of sandbox nodes: no route out, only the topology's containers."""
        return f"{self.prefix}-sandbox"

    def container(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def workspace_volume(self, node: str) -> str:
        return f"{self.prefix}-{node}-workspace"

    def topology_labels(self) -> dict[str, str]:
        """Labels shared by everything of this topology instance in this directory."""
        return {
            LABEL_MANAGED: MANAGED_BY,
            LABEL_TOPOLOGY: self.context.topology,
            LABEL_STATE_DIR: str(self.context.runtime_dir),
            LABEL_LINEAGE: self.context.lineage,
        }

    def labels(self, kind: str, node: str | None = None) -> dict[str, str]:
        labels = {**self.topology_labels(), LABEL_KIND: kind}
        if node is not None:
            labels[LABEL_NODE] = node
        return labels

    def leftover_filter(self, node: str) -> dict[str, list[str]]:
        """Docker filters matching earlier containers of ``node`` from this directory, whatever
        their lineage: a lost state file leaves orphans that nothing else would remove."""
        wanted = {
            LABEL_MANAGED: MANAGED_BY,
            LABEL_TOPOLOGY: self.context.topology,
            LABEL_STATE_DIR: str(self.context.runtime_dir),
            LABEL_NODE: node,
            LABEL_KIND: "node",
        }
        return {"label": [f"{key}={value}" for key, value in wanted.items()]}

    def directory_filter(self, kind: str) -> dict[str, list[str]]:
        """Docker filters matching every ``kind`` object of this topology in this directory, of
        any lineage: what a run that lost its state file (or its first save) left behind."""
        wanted = {k: v for k, v in self.labels(kind).items() if k != LABEL_LINEAGE}
        return {"label": [f"{key}={value}" for key, value in wanted.items()]}

    def instance_filter(self, kind: str) -> dict[str, list[str]]:
        """Docker filters matching every ``kind`` object of this topology instance."""
        wanted = self.labels(kind)
        return {"label": [f"{key}={value}" for key, value in wanted.items()]}
