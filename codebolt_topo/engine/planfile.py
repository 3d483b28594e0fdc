"""Saved plans: ``codebolt plan -out FILE`` then ``codebolt apply FILE``, as in Terraform.

A saved plan is what was reviewed: applying it must do exactly that or nothing. So the file
records the state it was made from (lineage and serial: ``apply`` refuses it once anything
wrote the state since, another apply, a ``watch`` healing a node), the topology file's digest
(refused when the file changed), the template variables it was rendered with, the ``--target``
and ``--replace`` options, and its actions. ``apply`` plans again under the lock from the same
inputs and goes ahead only when the actions are the same ones (drift seen since, a node killed
out of band, is a different plan).

Actions are recomputed rather than deserialised: a plan's desired nodes are built from the file,
which the digest proves unchanged. Reasons are stored masked, so a plan file shows no ``env``
values; it is still written 0600, like the state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codebolt_topo.engine.statefile import atomic_write
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.plan.diff import Plan

__all__ = ["FORMAT", "SavedPlan", "file_digest", "is_saved_plan", "load_plan"]

FORMAT = "codebolt-plan"
VERSION = 1


def file_digest(path: Path) -> str:
    """SHA-256 of the topology file's bytes (a template: of the template)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None


def _actions(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "action": a.kind.value,
            "node": a.node,
            "provider": a.provider,
            "reasons": list(a.messages),
        }
        for a in plan.actions
    ]


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A plan as written by ``plan -out``; see the module docstring."""

    topology: str
    file: str
    file_sha256: str
    lineage: str | None
    serial: int
    actions: list[dict[str, Any]]
    variables: dict[str, Any] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        plan: Plan,
        *,
        file: Path,
        lineage: str | None,
        serial: int,
        variables: dict[str, Any] | None = None,
        targets: list[str] | None = None,
        replace: list[str] | None = None,
    ) -> SavedPlan:
        """``plan`` (reasons already masked) made from ``file`` and the state at ``serial``."""
        return cls(
            topology=plan.topology,
            file=str(file.resolve()),
            file_sha256=file_digest(file),
            lineage=lineage,
            serial=serial,
            actions=_actions(plan),
            variables=dict(variables or {}),
            targets=list(targets or []),
            replace=list(replace or []),
        )

    def write(self, path: Path) -> None:
        document = {"format": FORMAT, "version": VERSION, **asdict(self)}
        atomic_write(path, json.dumps(document, indent=2, default=str).encode() + b"\n")

    def check_state(self, *, exists: bool, lineage: str, serial: int) -> None:
        """Refuse when the state moved since the plan was made."""
        if self.lineage is None:
            if exists:
                raise StateError(
                    f"saved plan is stale: it was made before topology {self.topology!r} had a "
                    f"state, and one was written since (serial {serial}); run codebolt plan "
                    "-out again"
                )
            return
        if not exists or lineage != self.lineage:
            raise StateError(
                f"saved plan is stale: it was made for state lineage {self.lineage}, the state "
                f"now has {lineage if exists else 'none'}; run codebolt plan -out again"
            )
        if serial != self.serial:
            raise StateError(
                f"saved plan is stale: it was made at state serial {self.serial}, the state is "
                f"now at serial {serial}; run codebolt plan -out again"
            )

    def check_file(self) -> None:
        """Refuse when the topology file changed since the plan was made."""
        if file_digest(Path(self.file)) != self.file_sha256:
            raise StateError(
                f"saved plan is stale: {self.file} changed since the plan was "
                "made; run codebolt plan -out again"
            )

    def check_actions(self, plan: Plan) -> None:
        """Refuse when planning again gives other actions (drift since, for instance)."""
        then = [(a["action"], a["node"]) for a in self.actions]
        now = [(a.kind.value, a.node) for a in plan.actions]
        if then != now:
            added = sorted(set(now) - set(then))
            gone = sorted(set(then) - set(now))
            parts = [
                *(f"now also {kind} {node}" for kind, node in added),
                *(f"no longer {kind} {node}" for kind, node in gone),
            ]
            raise StateError(
                "saved plan is stale: the topology would now change differently ("
                + ", ".join(parts or ["another order"])
                + "); run codebolt plan -out again"
            )


def is_saved_plan(path: Path) -> bool:
    """Whether ``path`` holds a saved plan (rather than a topology file)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and FORMAT.encode() in head


def load_plan(path: Path) -> SavedPlan:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable saved plan: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a saved plan (codebolt plan -out FILE writes one)")
    if document.get("version") != VERSION:
        raise ConfigError(
            f"{path}: saved plan version {document.get('version')} is not "
            f"supported (this codebolt writes version {VERSION})"
        )
    try:
        return SavedPlan(
            topology=str(document["topology"]),
            file=str(document["file"]),
            file_sha256=str(document["file_sha256"]),
            lineage=document["lineage"],
            serial=int(document["serial"]),
            actions=list(document["actions"]),
            variables=dict(document.get("variables") or {}),
            targets=list(document.get("targets") or []),
            replace=list(document.get("replace") or []),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"{path}: saved plan is damaged ({error})") from None
