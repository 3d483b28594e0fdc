"""Checks shared by everything that turns peer-supplied names into files.

A tree entry or tar member name decides where restore writes; these predicates refuse anything
that could escape the workspace or plant a repository inside it (``.git`` in any case, with the
trailing dots and spaces Windows strips, or its 8.3 short name ``git~1``), mirroring git's own
``fsck`` protections.
"""

from __future__ import annotations

from codebolt_topo.narrative.errors import UnsafeInputError
from codebolt_topo.narrative.limits import Limits, check_limit

__all__ = [
    "ALLOWED_MODES",
    "MODE_DIR",
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_LINK",
    "check_entry_name",
    "check_relative_path",
    "is_dotgit",
    "link_stays_inside",
]

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_DIR = 0o040000
ALLOWED_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK, MODE_DIR})
"""Submodules (gitlinks) and legacy modes are never written by us and never accepted."""

_DOTGIT_FIRST = (b".", b"g", b"G")
"""Only a name starting with one of these can fold to ``.git`` or ``git~1``."""


def is_dotgit(name: bytes) -> bool:
    """True for names a git client on some OS would treat as ``.git``."""
    if name[:1] not in _DOTGIT_FIRST:  # the common case, decided without folding
        return False
    folded = name.rstrip(b". ").lower()
    return folded in (b".git", b"git~1")


def check_entry_name(name: bytes, limits: Limits) -> None:
    """Refuse a tree entry name that is empty, a path, ``.``/``..``, ``.git`` or too long."""
    if len(name) > limits.max_name_bytes:
        check_limit("entry name length", len(name), limits.max_name_bytes)
    if name in (b"", b".", b"..") or b"/" in name or b"\x00" in name or b"\\" in name:
        raise UnsafeInputError(f"unsafe entry name {name!r}")
    if is_dotgit(name):
        raise UnsafeInputError(f"refusing a .git entry ({name!r})")


def check_relative_path(path: str, limits: Limits) -> list[bytes]:
    """Split a relative ``/``-separated path into checked components; refuse anything else."""
    raw = path.encode("utf-8", "surrogateescape")
    check_limit("path length", len(raw), limits.max_name_bytes)
    if raw.startswith(b"/") or raw.endswith(b"/"):
        raise UnsafeInputError(f"absolute or malformed path {path!r}")
    parts = raw.split(b"/")
    check_limit("path depth", len(parts), limits.max_path_depth)
    for part in parts:
        check_entry_name(part, limits)
    return parts


def link_stays_inside(link_path: list[bytes], target: bytes) -> bool:
    """True when a symlink at *link_path* pointing at *target* resolves inside the root."""
    if not target or target.startswith(b"/") or b"\x00" in target:
        return False
    depth = len(link_path) - 1
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in (b"", b"."):
            depth += 1
    return True
