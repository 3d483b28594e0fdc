"""Schema v1 of ``topology.yaml``, as pydantic models.

These models are the single source of truth for the file format: the loader validates against
them, ``schemas/topology.schema.json`` is generated from them, and the planner reads them. They
only describe what the user wrote; expanding shapes into edges and checking the graph is the job
of :mod:`codebolt_topo.plan`.
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
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from codebolt_topo.model.health import HeartbeatSpec, RestartPolicy

__all__ = [
    "EDGE_SHORTHAND",
    "NODE_NAME_PATTERN",
    "SHAPE_KEYS",
    "CapabilityName",
    "E2bSettings",
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
    "PlacementEntry",
    "PluginSetting",
    "Resources",
    "ShapeKind",
    "SshHost",
    "SshSettings",
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


#: ``512m``, ``2g``, ``1073741824``: bytes with an optional binary unit, as docker reads them.
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$"
#: ``SOURCE:/path[:ro|rw]``; a SOURCE starting with ``.`` or ``/`` is a host directory, anything
#: else a named volume.
VOLUME_PATTERN = r"^[^:]+:/[^:]*(:(ro|rw))?$"
#: Settings that only a container provider can honour; a local node must not silently ignore them
#: (``sandbox: true`` ignored would be a security hole).
CONTAINER_SETTINGS = ("image", "resources", "gpus", "volumes", "sandbox")


class Resources(_Strict):
    """Limits on a container node; omitted fields are unlimited (or the sandbox defaults)."""

    cpus: float | None = Field(None, gt=0, description="CPU cores, fractional allowed (1.5).")
    memory: Annotated[str, StringConstraints(pattern=MEMORY_PATTERN)] | None = Field(
        None, description="Memory limit such as 512m or 2g; the kernel OOM-kills past it."
    )
    pids: int | None = Field(
        None, ge=8, description="Most processes and threads at once (stops fork bombs)."
    )


class SshHost(_Strict):
    """One SSH server and how to trust and log into it (a cloud-vm target or a jump host)."""

    host: str = Field(min_length=1, description="Host name or address of the SSH server.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(None, min_length=1, description="Login; defaults to the local user.")
    identity_file: str | None = Field(
        None, min_length=1,
        description="Private key file (~ expanded; relative to the topology file); defaults to "
        "the SSH agent and ~/.ssh keys.",
    )
    known_hosts: str | None = Field(
        None, min_length=1,
        description="known_hosts file that must list the server's key; defaults to "
        "~/.ssh/known_hosts.",
    )
    host_key: str | None = Field(
        None, min_length=1,
        description="The server's public key pinned in OpenSSH form ('ssh-ed25519 AAAA...'), "
        "instead of a known_hosts file.",
    )
    insecure_host_key: bool = Field(
        False,
        description="Accept any host key (labs and tests only): anyone on the path can "
        "impersonate the server.",
    )

    @model_validator(mode="after")
    def _one_way_to_trust(self) -> SshHost:
        if self.insecure_host_key and (self.known_hosts or self.host_key):
            raise ValueError("insecure_host_key: cannot be combined with known_hosts or host_key")
        if self.known_hosts and self.host_key:
            raise ValueError("known_hosts, host_key: give one way to check the host key, not both")
        return self


class SshSettings(SshHost):
    """Where a cloud-vm node runs: an SSH server (possibly behind jump hosts) with Python 3."""

    jump: list[SshHost] = Field(
        default_factory=list,
        description="Jump hosts crossed in order before the target (like ssh -J a,b).",
    )
    remote_dir: str = Field(
        ".codebolt-topo", min_length=1,
        description="Directory on the target (relative to the login's home) holding the "
        "wheelhouse, the venv and one directory per node.",
    )
    python: str = Field(
        "python3", min_length=1,
        description="Interpreter on the target that creates the venv; it must match this "
        "machine's Python minor version and platform (the wheels are built here).",
    )


class E2bSettings(_Strict):
    """How an e2b node's sandbox is made and kept (provider: e2b)."""

    template: str = Field(
        "base", min_length=1,
        description="Sandbox template name or ID. Its Python must be 3.11 or newer.",
    )
    timeout: int = Field(
        300, ge=30, le=86400,
        description="Seconds the sandbox lives without a keep-alive. While the node runs, its "
        "relay process on this machine renews it every third of this; if this machine goes "
        "away, the sandbox ends at most this long after.",
    )
    install: Literal["wheel", "template"] = Field(
        "wheel",
        description="wheel: upload this project's wheel through the files API and pip-install "
        "it into a venv in the sandbox (dependencies from the template's site-packages or "
        "the sandbox's package index); template: the template already has codebolt-topo.",
    )
    python: str = Field(
        "python3", min_length=1,
        description="Interpreter in the sandbox that makes the venv (wheel) or runs the node "
        "(template).",
    )


#: Node fields a hybrid placement entry may override: how the node is launched, not what it is.
PLACEMENT_FIXED = ("provider", "placement", "count", "requires", "restart", "heartbeat", "plugins")


class PlacementEntry(_Strict):
    """One provider a hybrid node may be placed on, with settings for that provider only."""

    provider: str = Field(min_length=1, description="Provider name (local, docker, cloud-vm…).")
    max_nodes: int | None = Field(
        None, ge=1,
        description="Most nodes of this topology hybrid places on this provider; then the next.",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Node settings used when placed here (image, ssh, env, port…), replacing "
        "the node's own.",
    )

    @model_validator(mode="after")
    def _overridable(self) -> PlacementEntry:
        if self.provider == "hybrid":
            raise ValueError("provider: a hybrid placement cannot place on hybrid")
        fixed = sorted(set(self.overrides) & set(PLACEMENT_FIXED))
        if fixed:
            raise ValueError(f"overrides: {', '.join(fixed)} belong to the node, not a placement")
        return self


def _placement_item_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, dict | PlacementEntry):
        return "<entry>"
    return None


#: ``local`` or ``{provider: docker, max_nodes: 2, overrides: {...}}``.
PlacementItem = Annotated[
    Annotated[Annotated[str, StringConstraints(min_length=1)], Tag("<name>")]
    | Annotated[PlacementEntry, Tag("<entry>")],
    Discriminator(
        _placement_item_kind,
        custom_error_type="placement_item",
        custom_error_message="a placement is a provider name or {provider: NAME, max_nodes: N, "
        "overrides: {...}}",
    ),
]


class NodeSpec(_Strict):
    """One node: a full instance (daemon, plugin host, executor) placed by a provider."""

    restart: RestartPolicy = Field(
        RestartPolicy.ON_FAILURE,
        description="What `codebolt watch` does when the node dies or stops answering.",
    )
    heartbeat: HeartbeatSpec | None = Field(
        None, description="Overrides the topology's heartbeat settings for this node."
    )

    provider: str = Field(
        "local",
        description="Which provider places this node (local, docker, e2b, cloud-vm, hybrid).",
    )
    capabilities: list[CapabilityName] = Field(
        default_factory=list, description="Capabilities this node offers (gpu, python, browser…)."
    )
    count: int | None = Field(
        None, ge=1, le=1000,
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
    image: str | None = Field(
        None,
        min_length=1,
        description="Container image of the node (docker). Defaults to codebolt-node:<version>, "
        "built by scripts/build-node-image.sh.",
    )
    resources: Resources | None = Field(
        None, description="CPU, memory and process limits of the node's container (docker)."
    )
    gpus: Annotated[int, Field(ge=1)] | Literal["all"] | None = Field(
        None,
        description="GPUs handed to the container (docker device requests): a count or 'all'. "
        "Needs an engine with the NVIDIA runtime.",
    )
    volumes: list[Annotated[str, StringConstraints(pattern=VOLUME_PATTERN)]] = Field(
        default_factory=list,
        description="Extra mounts 'SOURCE:/path[:ro]' (docker): a SOURCE starting with . or / is "
        "a host directory relative to the topology file, anything else a named volume.",
    )
    sandbox: bool = Field(
        False,
        description="Harden the node's container for untrusted code (docker): no capabilities, "
        "read-only root, tmpfs workspace, process/memory/cpu limits, no egress.",
    )

    ssh: SshSettings | None = Field(
        None, description="The SSH server a cloud-vm node runs on (cloud-vm only)."
    )
    e2b: E2bSettings | None = Field(
        None, description="Template, timeout and install mode of an e2b node's sandbox "
        "(e2b only; defaults apply when omitted).",
    )
    placement: list[PlacementItem] = Field(
        default_factory=list,
        description="Providers a hybrid node tries in order: the first that offers every "
        "requires:, has room and starts the node places it (hybrid only).",
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return env

    @model_validator(mode="after")
    def _container_settings_need_a_container(self) -> NodeSpec:
        self._check_remote_settings()
        if self.provider in ("local", "cloud-vm", "e2b"):
            used = list(self.container_settings())
            if used:
                raise ValueError(
                    f"{', '.join(used)}: only container providers honour this; "
                    "set provider: docker or remove it"
                )
        if self.sandbox and self.workspace is not None:
            raise ValueError(
                "workspace: a sandbox node gets a private tmpfs workspace; remove workspace "
                "(or mount what it needs read-only with volumes)"
            )
        return self

    def _check_remote_settings(self) -> None:
        if self.provider == "cloud-vm" and self.ssh is None:
            raise ValueError("ssh: a cloud-vm node needs ssh settings (at least host)")
        if self.ssh is not None and self.provider != "cloud-vm":
            raise ValueError("ssh: only provider: cloud-vm uses ssh settings")
        if self.e2b is not None and self.provider != "e2b":
            raise ValueError("e2b: only provider: e2b uses e2b settings")
        if self.provider == "hybrid" and not self.placement:
            raise ValueError("placement: a hybrid node needs a list of providers to try")
        if self.placement and self.provider != "hybrid":
            raise ValueError("placement: only provider: hybrid uses a placement list")
        for index in range(len(self.placement)):
            try:
                self.placed_spec(index)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                message = str(first["msg"]).removeprefix("Value error, ")
                raise ValueError(
                    f"placement[{index}]: {where + ': ' if where else ''}{message}"
                ) from None

    def placement_entries(self) -> list[PlacementEntry]:
        """The placement list with bare provider names as entries without overrides."""
        return [
            PlacementEntry(provider=entry) if isinstance(entry, str) else entry
            for entry in self.placement
        ]

    def placed_spec(self, index: int) -> NodeSpec:
        """The node as placement entry ``index`` would launch it: its provider, the node's own
        settings, then the entry's overrides (validated like any node)."""
        entry = self.placement_entries()[index]
        values = self.model_dump(exclude_unset=True, by_alias=True, exclude={"placement"})
        values.update(entry.overrides, provider=entry.provider)
        return NodeSpec.model_validate(values)

    def remote_settings(self) -> dict[str, Any]:
        """ssh, e2b and placement when set, for launch hashes (empty otherwise, so nodes that
        use none keep the hash they had before these settings existed)."""
        values = self.model_dump(mode="json", include={"ssh", "e2b", "placement"},
                                 exclude_none=True)
        return {name: value for name, value in values.items() if value}

    def container_settings(self) -> dict[str, Any]:
        """The container settings that differ from their defaults, for launch hashes (empty on
        nodes that set none, so adding these fields changed no existing node's hash)."""
        values = self.model_dump(mode="json", include=set(CONTAINER_SETTINGS))
        unset: tuple[object, ...] = (None, [], False)
        return {name: values[name] for name in CONTAINER_SETTINGS if values[name] not in unset}


SyncMode = Literal["push", "pull", "both", "none"]


class EdgeSpec(_Strict):
    """A directed edge: ``from`` may send work to ``to``."""

    from_: NodeName = Field(alias="from", description="The node that sends work.")
    to: NodeName = Field(description="The node that receives and runs (or forwards) work.")
    sync: SyncMode = Field(
        "none",
        description="Narrative history that `codebolt sync` moves along this edge: push "
        "(from -> to), pull (to -> from), both, or none.",
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
