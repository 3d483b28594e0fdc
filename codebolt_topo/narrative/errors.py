"""Errors of the Narrative Engine.

Every failure the store, the bundle and tarball readers or the restore can report derives from
:class:`NarrativeError`, itself a :class:`~codebolt_topo.errors.TopoError`, so the CLI and the node
daemon map them like any other user-facing error. dulwich, zlib and tarfile errors are translated
here at the boundary: callers never need to import them.
"""

from __future__ import annotations

from codebolt_topo.errors import TopoError

__all__ = [
    "CorruptDataError",
    "DirtyWorkspaceError",
    "HierarchyError",
    "InvalidNameError",
    "LimitExceededError",
    "MissingPrerequisiteError",
    "NarrativeError",
    "UnknownSnapshotError",
    "UnsafeInputError",
]


class NarrativeError(TopoError):
    """Base of every Narrative Engine error."""


class InvalidNameError(NarrativeError):
    """An id, environment name or ref name breaks our pattern or git's check-ref-format rules."""


class HierarchyError(NarrativeError):
    """A snapshot would break the hierarchy (a thread moved to another objective, bad metadata)."""


class UnknownSnapshotError(NarrativeError):
    """No snapshot, commit or thread matches what was asked for."""


class DirtyWorkspaceError(NarrativeError):
    """Restore refused: files changed since the last snapshot or restore would be overwritten."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        shown = ", ".join(self.paths[:10])
        more = f" (and {len(self.paths) - 10} more)" if len(self.paths) > 10 else ""
        super().__init__(
            f"workspace has uncommitted changes: {shown}{more}; snapshot first or pass force=True"
        )


class UnsafeInputError(NarrativeError):
    """An imported bundle or tarball contains something we never accept (paths, links, .git)."""


class LimitExceededError(UnsafeInputError):
    """An imported archive is larger than the configured :class:`Limits` allow."""


class CorruptDataError(NarrativeError):
    """An imported bundle or tarball is truncated, malformed or does not hash to its ids."""


class MissingPrerequisiteError(NarrativeError):
    """An incremental bundle needs commits this store does not have."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "bundle needs commits this store does not have: " + ", ".join(self.missing)
        )
