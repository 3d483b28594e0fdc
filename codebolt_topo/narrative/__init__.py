"""The Narrative Engine: snapshots of a workspace in a shadow git repository, and their transfer.

Public API (imported lazily, so ``import codebolt_topo.narrative`` does not load dulwich)::

    store = NarrativeStore.open(state_dir, workspace, environment="laptop")
    info = store.snapshot("obj-1", "thread-a", "run-1", name="after tests", message="...")
    store.log()                      # [ObjectiveLog -> ThreadLog -> RunLog -> SnapshotInfo]
    store.restore(info.snapshot_id)  # DirtyWorkspaceError unless force=True
    data = store.export_bundle(Selection.thread("thread-a"), have=peer.heads().values())
    report = peer.import_bundle(data, source_env="laptop")  # ImportReport
    tgz = store.export_tar(info.commit); peer.import_tar(tgz)

See ``docs``-level detail in each module: metadata.py (commit trailers), bundle.py, tarball.py,
importer.py (verification order), limits.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codebolt_topo.narrative.bundle import Selection
    from codebolt_topo.narrative.errors import (
        CorruptDataError,
        DirtyWorkspaceError,
        HierarchyError,
        InvalidNameError,
        LimitExceededError,
        MissingPrerequisiteError,
        NarrativeError,
        UnknownSnapshotError,
        UnsafeInputError,
    )
    from codebolt_topo.narrative.hierarchy import ObjectiveLog, RunLog, SnapshotInfo, ThreadLog
    from codebolt_topo.narrative.importer import ImportReport, RefChange
    from codebolt_topo.narrative.limits import Limits
    from codebolt_topo.narrative.metadata import SnapshotMeta
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = [
    "CorruptDataError",
    "DirtyWorkspaceError",
    "HierarchyError",
    "ImportReport",
    "InvalidNameError",
    "LimitExceededError",
    "Limits",
    "MissingPrerequisiteError",
    "NarrativeError",
    "NarrativeStore",
    "ObjectiveLog",
    "RefChange",
    "RunLog",
    "Selection",
    "SnapshotInfo",
    "SnapshotMeta",
    "ThreadLog",
    "UnknownSnapshotError",
    "UnsafeInputError",
]

_WHERE = {
    "Selection": "bundle",
    "ImportReport": "importer",
    "RefChange": "importer",
    "Limits": "limits",
    "SnapshotMeta": "metadata",
    "NarrativeStore": "store",
    "ObjectiveLog": "hierarchy",
    "RunLog": "hierarchy",
    "SnapshotInfo": "hierarchy",
    "ThreadLog": "hierarchy",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE.get(name, 'errors')}")
    return getattr(module, name)
