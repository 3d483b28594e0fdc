"""Size limits applied to everything imported from a peer.

Bundles and tarballs come from other environments, possibly hostile ones; every reader checks these
limits *before* allocating or inflating, so a decompression bomb or a million-entry archive is
refused with :class:`~codebolt_topo.narrative.errors.LimitExceededError` instead of exhausting
memory or disk.

Memory does not follow the sizes: archives are streamed to disk and read back in bounded pieces
(see :mod:`~codebolt_topo.narrative.incoming`). What grows is the bookkeeping: about 50 bytes
per object (:mod:`~codebolt_topo.narrative.objtable`, :mod:`~codebolt_topo.narrative.bounds`)
and 30 more per delta, so with the defaults (a million objects, half a million deltas) an
import stays within 64 MiB of its idle size whatever it is sent; time is linear in the
inflated size.
"""

from __future__ import annotations

from dataclasses import dataclass

from codebolt_topo.narrative.errors import LimitExceededError

__all__ = ["Limits", "check_limit"]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds for one import. The defaults suit workspaces of a few hundred thousand files."""

    max_archive_bytes: int = 1024 * _MIB
    """Size of the bundle or tar.gz as received (compressed)."""
    max_unpacked_bytes: int = 2048 * _MIB
    """Sum of the inflated sizes of every object or member."""
    max_object_bytes: int = 512 * _MIB
    """Inflated size of one object or one tar member."""
    max_entries: int = 1_000_000
    """Objects in a pack, members in a tarball, or files one snapshot restores to."""
    max_deltas: int = 500_000
    """Deltas in a pack (only the git CLI sends them): each costs ~30 bytes more to resolve."""
    max_refs: int = 10_000
    """Refs and prerequisites in a bundle header."""
    max_name_bytes: int = 4096
    """Length of one path, tree entry name or ref name."""
    max_path_depth: int = 256
    """Directories nested inside one another."""
    max_header_bytes: int = 4 * _MIB
    """Bundle header (refs, prerequisites) or tarball manifest."""


def check_limit(what: str, value: int, limit: int) -> None:
    """Raise :class:`LimitExceededError` naming *what* when ``value > limit``."""
    if value > limit:
        raise LimitExceededError(f"{what} exceeds the limit ({value} > {limit})")
