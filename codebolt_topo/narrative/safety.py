"""Checks shared by everything that turns peer-supplied names into files.

A tree entry or tar member name decides where restore writes; these predicates refuse anything
that could escape the workspace or plant a repository inside it (``.git`` in any case, with the
trailing dots and spaces Windows strips, or its 8.3 short name ``git~1``), mirroring git's own
``fsck`` protections.

Symlinks follow one rule everywhere (:func:`check_link`): a link's target is relative, and its
leading ``..`` climb no higher than the workspace root. ``..`` after a name is refused too,
because that name may itself be a link elsewhere (``a/../..`` with ``a -> x/y`` climbs from
``x/y``), so only a target of the form ``../../name/name`` can be judged without resolving
other links; and since every link obeys the rule, following a chain of them stays inside. The
snapshot does not capture links that break it, bundles and tarballs carrying one are refused at
import, before anything is stored, and restore refuses to create one.
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
    "check_link",
    "check_relative_path",
    "is_dotgit",
    "link_climb",
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


def link_climb(target: bytes) -> int | None:
    """How many directories above its own a symlink's *target* reaches (its leading ``..``).

    ``None`` when no position inside a workspace keeps it there: an absolute or empty target,
    a NUL byte, or ``..`` after a name (see the module docstring).
    """
    if not target or target[:1] == b"/" or b"\x00" in target:
        return None
    if b".." not in target:
        return 0
    climb, named = 0, False
    for part in target.split(b"/"):
        if part == b"..":
            if named:
                return None
            climb += 1
        elif part not in (b"", b"."):
            named = True
    return climb


def check_link(path: bytes, target: bytes) -> None:
    """Refuse a symlink at workspace path *path* (``a/b/link``) whose *target* leads outside."""
    climb = link_climb(target)
    if climb is None or climb > path.count(b"/"):
        raise UnsafeInputError(
            f"symlink {path.decode('utf-8', 'replace')!r} -> "
            f"{target.decode('utf-8', 'replace')!r} leads outside the workspace "
            "(links must be relative and stay inside it)"
        )
