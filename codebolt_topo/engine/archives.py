"""The archive of a topology's narrative histories: where a removed node's store goes.

Layout, beside the state and outside the runtime files that destroy removes::

    .codebolt/<topology>.archive/            0700
        <node>-<UTC stamp>-<lineage[:8]>.bundle   the node's whole history (a git bundle: every
                                                  thread and diverged copy), 0600
        <node>-<UTC stamp>-<lineage[:8]>.json     its manifest (written last: a bundle without
                                                  one is not an archive)

With the PostgreSQL backend the archive is still this directory on the machine that ran the
command: bundles can be large, and the path is printed where they go.

Why a bundle: it is the narrative engine's own transfer format, so restoring is an ordinary
import (:func:`restore_archive`, ``codebolt history restore``) into any running node, whatever
its provider, and ``git`` itself can read it. The manifest keeps the bundle's sha256 so a node
archived twice without a change in between (a watch healing the same crashed node) is archived
once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codebolt_topo.engine.statefile import StateBackend, atomic_write
from codebolt_topo.engine.statekey import require_open
from codebolt_topo.errors import ConfigError
from codebolt_topo.model.state import State

__all__ = [
    "Archive",
    "archive_dir",
    "bundle_threads",
    "find_archive",
    "list_archives",
    "remove_archive",
    "restore_archive",
    "write_archive",
]


def archive_dir(state_file: StateBackend) -> Path:
    """Where a topology's archived histories go: beside its state, outside the runtime files
    that destroy removes."""
    return state_file.directory / f"{state_file.name}.archive"


@dataclass(frozen=True, slots=True)
class Archive:
    """One archived history: the bundle and what its manifest says."""

    id: str
    node: str
    topology: str
    lineage: str
    provider: str
    archived_at: str
    threads: int
    size: int
    sha256: str
    bundle: Path

    def describe(self) -> str:
        return (
            f"{self.id}  node {self.node} ({self.provider}), {self.threads} thread(s), "
            f"{self.size} bytes, archived {self.archived_at}"
        )

    def document(self) -> dict[str, Any]:
        """The manifest (and ``history list --json``) form."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def bundle_threads(data: bytes) -> int:
    """Threads a git bundle carries: its header's ref lines (``<sha> refs/.../threads/...``),
    read as git's bundle format writes them, up to the blank line before the pack."""
    header = data[: data.find(b"\n\n")] if b"\n\n" in data else b""
    return sum(1 for line in header.splitlines()[1:] if b"/threads/" in line)


def write_archive(
    state_file: StateBackend, state: State, node: str, provider: str, data: bytes
) -> tuple[Archive, bool]:
    """Archive ``data`` (node ``node``'s history as a bundle); returns it and whether it was
    written (False: the latest archive of that node already holds exactly this history)."""
    digest = hashlib.sha256(data).hexdigest()
    earlier = [a for a in list_archives(state_file) if a.node == node]
    if earlier and earlier[-1].sha256 == digest and earlier[-1].bundle.is_file():
        return earlier[-1], False
    now = time.gmtime()
    archive_id = f"{node}-{time.strftime('%Y%m%dT%H%M%SZ', now)}-{state.lineage[:8]}"
    directory = archive_dir(state_file)
    taken = {a.id for a in earlier}
    serial = 1
    while archive_id in taken or (directory / f"{archive_id}.json").exists():
        serial += 1  # two archives of one node within a second
        archive_id = f"{archive_id.rsplit('.', 1)[0]}.{serial}"
    archive = Archive(
        id=archive_id,
        node=node,
        topology=state.topology,
        lineage=state.lineage,
        provider=provider,
        archived_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        threads=bundle_threads(data),
        size=len(data),
        sha256=digest,
        bundle=directory / f"{archive_id}.bundle",
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(archive.bundle, data)
    manifest = json.dumps(archive.document(), indent=2).encode() + b"\n"
    atomic_write(directory / f"{archive_id}.json", manifest)
    return archive, True


def remove_archive(archive: Archive) -> None:
    """Take back an archive written by a run that then refused to go on (manifest first, so
    the bundle is never listed without its file)."""
    archive.bundle.with_suffix(".json").unlink(missing_ok=True)
    archive.bundle.unlink(missing_ok=True)


def list_archives(state_file: StateBackend) -> list[Archive]:
    """Every archived history of the topology, oldest first."""
    found = []
    for manifest in archive_dir(state_file).glob("*.json"):
        try:
            data: dict[str, Any] = json.loads(manifest.read_text())
            data["bundle"] = Path(data["bundle"])
            found.append(Archive(**data))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not one of ours
    return sorted(found, key=lambda a: (a.archived_at, a.id))


def find_archive(state_file: StateBackend, key: str) -> Archive:
    """The archive named ``key``: its id, a unique prefix of one, or a node's name (that
    node's latest archive)."""
    archives = list_archives(state_file)
    exact = [a for a in archives if a.id == key]
    by_node = [a for a in archives if a.node == key]
    matches = exact or by_node[-1:] or [a for a in archives if a.id.startswith(key)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(a.id for a in archives) or "none"
        raise ConfigError(
            f"no archived history {key!r} in {archive_dir(state_file)} (archives: {known})"
        )
    raise ConfigError(f"{key!r} names several archives: {', '.join(a.id for a in matches)}")


async def restore_archive(state: State, archive: Archive, node: str) -> dict[str, Any]:
    """Import ``archive`` into running node ``node``'s store; the import report (its threads
    created, updated, diverged, unchanged)."""
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.sync import node_narrative
    from codebolt_topo.model.state import Lifecycle

    held = state.nodes.get(node)
    if held is None or held.url is None or held.lifecycle is not Lifecycle.RUNNING:
        raise ConfigError(
            f"node {node!r} is not running: apply a topology with it, then restore into it"
        )
    require_open(held.admin_token, f"restore history into node {node!r}")
    try:
        data = archive.bundle.read_bytes()
    except OSError as error:
        raise ConfigError(f"archive {archive.id}: cannot read {archive.bundle}: {error}") from None
    if hashlib.sha256(data).hexdigest() != archive.sha256:
        raise ConfigError(f"archive {archive.id}: {archive.bundle} does not match its manifest")
    async with NodeClient.admin(held) as client:
        return await node_narrative(client, state, node).import_bundle(data, archive.node)
