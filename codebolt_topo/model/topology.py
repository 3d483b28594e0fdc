"""Schema v1 of ``topology.yaml``, as pydantic models.

These models are the single source of truth for the file format: the loader validates against
them, ``schemas/topology.schema.json`` is generated from them, and the planner reads them. They
only describe what the user wrote; expanding shapes into edges and checking the graph is the job
of :mod:`codebolt_topo.plan`. What only one provider reads (docker's ``image``, cloud-vm's
``ssh:``) is that provider's settings model, added to :class:`NodeSpec` by
:mod:`codebolt_topo.model.nodes`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
)
from typing_extensions import TypeAliasType

from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.health import HeartbeatSpec, RestartPolicy
from codebolt_topo.model.limits import Limits

__all__ = [
    "EDGE_SHORTHAND",
    "NODE_NAME_PATTERN",
    "SHAPE_KEYS",
    "CapabilityName",
    "DialMode",
    "EdgeItem",
    "EdgeSpec",
    "FanOutShape",
    "FanOutSpec",
    "HubShape",
    "HubSpec",
    "LinearShape",
    "MeshShape",
    "NodeName",
    "NodeSpec",
    "PluginSetting",
    "ShapeKind",
    "SyncMode",
    "Topology",
    "TreeChild",
    "TreeLevel",
    "TreeShape",
]

NODE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

NodeName = Annotated[
    str,
    StringConstraints(pattern=NODE_NAME_PATTERN),
    Field(description="Lowercase letters, digits, '-' and '_'; at most 63 characters."),
]
CapabilityName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$"),
    Field(description="A capability such as gpu, python, python:3.11 or browser."),
]

#: ``a -> b``, ``a <-> b`` and chains such as ``a -> b -> c``.
EDGE_SHORTHAND = re.compile(r"^\s*[a-z0-9][a-z0-9_-]*(\s*(->|<->)\s*[a-z0-9][a-z0-9_-]*)+\s*$")

#: Keys that select a shape generator inside an ``edges`` item.
SHAPE_KEYS = ("linear", "fan-out", "tree", "mesh", "hub")


def _plugin_setting_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "<switch>"
    if isinstance(value, dict):
        return "<settings>"
    return None


#: A plugin is switched on or off, or enabled with settings. Discriminated (with bracketed tags
#: that cannot be field names) so a wrong value yields one error instead of one per form.
PluginSetting = Annotated[
    Annotated[bool, Tag("<switch>")] | Annotated[dict[str, Any], Tag("<settings>")],
    Discriminator(
        _plugin_setting_kind,
        custom_error_type="plugin_setting",
        custom_error_message="a plugin setting is true, false, or a mapping of settings",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ShapeKind(StrEnum):
    """Shapes a topology may declare; the planner checks the graph against the declaration."""

    LINEAR = "linear"
    FAN_OUT = "fan-out"
    TREE = "tree"
    MESH = "mesh"
    HUB = "hub"
    ANY = "any"


class NodeSpec(_Strict):
    """One node: a full instance (daemon, plugin host, executor) placed by a provider."""

    # What every node has. The loader validates against this model plus the installed providers'
    # settings (model/nodes.py), so this one is only built when used on its own.
    model_config = ConfigDict(defer_build=True)

    restart: RestartPolicy = Field(
        RestartPolicy.ON_FAILURE,
        description="What `codebolt watch` does when the node dies or stops answering.",
    )
    heartbeat: HeartbeatSpec | None = Field(
        None, description="Overrides the topology's heartbeat settings for this node."
    )
    limits: Limits | None = Field(
        None,
        description="Overrides the topology's limits on requests, connections and jobs "
        "for this node.",
    )

    provider: str = Field(
        "local",
        description=(
            "Which provider places this node (local, docker, swarm, e2b, cloud-vm, hybrid)."
        ),
    )
    capabilities: list[CapabilityName] = Field(
        default_factory=list, description="Capabilities this node offers (gpu, python, browser…)."
    )
    count: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Run N replicas named <node>-1 … <node>-N; edges naming the node reach "
        "every replica. Scaling up or down changes only the replicas added or removed.",
    )
    requires: list[CapabilityName] = Field(
        default_factory=list,
        description="Capabilities the node's placement must offer (gpu, python:3.11, browser…); "
        "plan reports every unmet one with the reason.",
    )
    plugins: dict[str, PluginSetting] = Field(
        default_factory=dict,
        description=(
            "Node plugins by name: true enables with defaults, false disables, a mapping enables "
            "with settings. remote-execution is enabled automatically on nodes that receive edges."
        ),
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the node's ProviderServer binds. Non-loopback addresses need a token "
        "(always issued by apply).",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the ProviderServer; omitted means the provider assigns one "
        "(3100 inside containers, a free port for local nodes).",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables for the daemon and its commands."
    )
    workspace: str | None = Field(
        None,
        description="Working directory for executed commands, relative to the topology file. "
        "Defaults to a per-node directory under .codebolt/. On docker nodes it is bind-mounted "
        "at /workspace (otherwise a volume per node holds /workspace).",
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return env


SyncMode = Literal["push", "pull", "both", "none"]
DialMode = Literal["sender", "receiver", "auto"]


class EdgeSpec(_Strict):
    """A directed edge: ``from`` may send work to ``to``."""

    from_: NodeName = Field(alias="from", description="The node that sends work.")
    to: NodeName = Field(description="The node that receives and runs (or forwards) work.")
    sync: SyncMode = Field(
        "none",
        description="Narrative history that `codebolt sync` moves along this edge: push "
        "(from -> to), pull (to -> from), both, or none.",
    )
    dial: DialMode = Field(
        "auto",
        description="Which end opens the edge's connection; work still goes only from -> to. "
        "sender: from dials to (to must be reachable from from); receiver: to dials from (to "
        "behind NAT, or in a sandbox nothing can dial into); auto: the sender where it can "
        "reach the receiver, else the receiver where it can reach the sender.",
    )


class LinearShape(_Strict):
    """``linear: [a, b, c]`` expands to ``a -> b -> c``."""

    linear: list[NodeName] = Field(min_length=2)


class FanOutSpec(_Strict):
    root: NodeName
    leaves: list[NodeName] = Field(min_length=1)


class FanOutShape(_Strict):
    """``fan-out: {root: a, leaves: [b, c]}`` expands to ``a -> b`` and ``a -> c``."""

    fan_out: FanOutSpec = Field(alias="fan-out")


def _tree_child_kind(value: Any) -> str | None:
    """Pick the tree-child form from the value, so a bad leaf is reported once, not per form.

    Tags are bracketed so they can never be mistaken for node names in error locations.
    """
    if value is None:
        return "<leaf>"
    if isinstance(value, list):
        return "<leaves>"
    if isinstance(value, dict):
        return "<subtree>"
    return None


TreeChild = TypeAliasType(
    "TreeChild",
    Annotated[
        Annotated["TreeLevel", Tag("<subtree>")]
        | Annotated[list[NodeName], Tag("<leaves>")]
        | Annotated[None, Tag("<leaf>")],
        Discriminator(
            _tree_child_kind,
            custom_error_type="tree_child",
            custom_error_message="a tree child is a mapping (subtree), a list of leaf nodes, "
            "or empty (a leaf)",
        ),
    ],
)
TreeLevel = TypeAliasType("TreeLevel", dict[NodeName, TreeChild])


class TreeShape(_Strict):
    """``tree: {a: {b: [d, e], c: [f, g]}}``: each key sends work to its children."""

    tree: dict[NodeName, TreeChild] = Field(min_length=1)


class MeshShape(_Strict):
    """``mesh: [a, b, c]``: every pair of listed nodes is joined both ways."""

    mesh: list[NodeName] = Field(min_length=2)


class HubSpec(_Strict):
    hub: NodeName
    inbound: list[NodeName] = Field(default_factory=list)
    outbound: list[NodeName] = Field(default_factory=list)


class HubShape(_Strict):
    """``hub: {hub: a, inbound: [b, c], outbound: [e]}``: b, c -> a -> e."""

    hub: HubSpec


EdgeShorthand = Annotated[
    str,
    StringConstraints(pattern=EDGE_SHORTHAND.pattern),
    Field(description="'a -> b', 'a <-> b' or a chain 'a -> b -> c'."),
]


def _edge_item_kind(value: Any) -> str | None:
    """Pick the union member from the item's form, so errors speak about one member only."""
    if isinstance(value, str):
        return "shorthand"
    if isinstance(value, BaseModel):
        return {
            EdgeSpec: "edge",
            LinearShape: "linear",
            FanOutShape: "fan-out",
            TreeShape: "tree",
            MeshShape: "mesh",
            HubShape: "hub",
        }.get(type(value))
    if isinstance(value, dict):
        for key in SHAPE_KEYS:
            if key in value:
                return key
        # A mapping with neither ``from``/``to`` nor a shape key gets the one union-level error,
        # which lets the loader suggest the shape key the user probably misspelled.
        return "edge" if "from" in value or "to" in value else None
    return None


EdgeItem = Annotated[
    Annotated[EdgeShorthand, Tag("shorthand")]
    | Annotated[EdgeSpec, Tag("edge")]
    | Annotated[LinearShape, Tag("linear")]
    | Annotated[FanOutShape, Tag("fan-out")]
    | Annotated[TreeShape, Tag("tree")]
    | Annotated[MeshShape, Tag("mesh")]
    | Annotated[HubShape, Tag("hub")],
    Discriminator(
        _edge_item_kind,
        custom_error_type="edge_item",
        custom_error_message="an edge is 'a -> b', {from: a, to: b}, or one of the shapes "
        "linear, fan-out, tree, mesh, hub",
    ),
]


def _empty_node_allowed_in_schema(schema: dict[str, Any]) -> None:
    """``a:`` with no settings is a valid node (see ``_empty_node_is_default``): say so to
    editors too, or they would flag every node written that way."""
    for pattern, spec in schema.get("patternProperties", {}).items():
        schema["patternProperties"][pattern] = {"anyOf": [spec, {"type": "null"}]}


class Topology(_Strict):
    """A whole topology: named nodes and the edges that say who may send work to whom."""

    # Built when used on its own; the loader uses the installed providers' model (model/nodes.py).
    model_config = ConfigDict(defer_build=True)

    version: Literal[1] = Field(1, description="Schema version of this file.")
    name: NodeName = Field(description="Name of the topology; names its state file.")
    description: str | None = None
    entry: NodeName | None = Field(
        None, description="Node that commands enter by default; defaults to the graph's root."
    )
    shape: ShapeKind | None = Field(
        None, description="Declared shape; the planner refuses a graph that does not match it."
    )
    heartbeat: HeartbeatSpec = Field(
        default_factory=HeartbeatSpec,
        description="Heartbeat settings for every node (30 s by default).",
    )
    backend: BackendSpec = Field(
        default_factory=BackendSpec,
        description="Where the state lives: file (default) or postgres (DSN from the environment).",
    )
    limits: Limits = Field(
        default_factory=Limits,
        description="What one request (targets), one inbound connection and each node (jobs, "
        "pipes, descriptors) may take; past them a request is refused with one clear error.",
    )
    nodes: dict[NodeName, NodeSpec] = Field(
        min_length=1, json_schema_extra=_empty_node_allowed_in_schema
    )
    edges: list[EdgeItem] = Field(default_factory=list)

    @field_validator("nodes", mode="before")
    @classmethod
    def _empty_node_is_default(cls, nodes: Any) -> Any:
        # ``a:`` with nothing after it is YAML null; treat it as ``a: {}``.
        if isinstance(nodes, dict):
            return {name: ({} if spec is None else spec) for name, spec in nodes.items()}
        return nodes
