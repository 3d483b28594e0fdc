"""Write a snapshot's tree into the workspace, touching only what differs.

The caller has already established that the workspace is clean (or that the user forced the
restore); this module turns the difference between the workspace's current tree and the target
tree into deletions and writes. Every write goes through a temporary name and ``os.replace`` and
never follows a symlink: a parent directory that turns out to be a symlink or a file is a
conflict (replaced only under ``force``), so a snapshot can never make restore write outside the
workspace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator

from dulwich.objects import Blob, ShaFile, Tree

from codebolt_topo.narrative.errors import CorruptDataError, DirtyWorkspaceError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.safety import MODE_DIR, MODE_EXEC, MODE_LINK, check_entry_name

__all__ = ["Change", "apply_changes", "bounded_changes", "diff_trees"]

Lookup = Callable[[bytes], ShaFile]
Leaf = tuple[int, bytes]
Change = tuple[bytes, Leaf | None, Leaf | None]
"""``(path, old (mode, sha) or None, new (mode, sha) or None)`` for one file or symlink."""


def diff_trees(
    get: Lookup,
    old: bytes | None,
    new: bytes | None,
    prefix: bytes = b"",
    *,
    max_depth: int | None = None,
) -> Iterator[Change]:
    """Yield every file-level change from tree *old* to tree *new* (either may be ``None``).

    With *max_depth*, trees nested deeper raise LimitExceededError before they are read.
    """
    if old == new:
        return
    if max_depth is not None:
        check_limit("path depth", prefix.count(b"/") + 1, max_depth)
    old_entries = _entries(get, old)
    new_entries = _entries(get, new)
    for name in sorted(old_entries.keys() | new_entries.keys()):
        path = prefix + name
        before, after = old_entries.get(name), new_entries.get(name)
        if before == after:
            continue
        before_dir = before is not None and before[0] == MODE_DIR
        after_dir = after is not None and after[0] == MODE_DIR
        if before_dir or after_dir:
            yield from diff_trees(
                get,
                before[1] if before is not None and before_dir else None,
                after[1] if after is not None and after_dir else None,
                path + b"/",
                max_depth=max_depth,
            )
        yield_old = None if before_dir else before
        yield_new = None if after_dir else after
        if yield_old != yield_new:
            yield path, yield_old, yield_new


def bounded_changes(
    get: Lookup, old: bytes | None, new: bytes | None, limits: Limits
) -> list[Change]:
    """:func:`diff_trees` as a list, refused past the limits before anything is written.

    Trees may share subtrees, so a few kilobytes of objects can name exponentially many files (a
    "git bomb", the tree-shaped decompression bomb); whatever a peer sent, what restore or a
    tarball export expands stays within ``max_entries`` files and ``max_path_depth`` levels.
    """
    changes: list[Change] = []
    for change in diff_trees(get, old, new, max_depth=limits.max_path_depth):
        changes.append(change)
        if len(changes) > limits.max_entries:
            check_limit("files in one snapshot", len(changes), limits.max_entries)
    return changes


def apply_changes(
    root: bytes, get: Lookup, changes: list[Change], *, force: bool, limits: Limits
) -> None:
    """Apply *changes* (from :func:`diff_trees`) to the workspace at *root*."""
    removed_dirs: set[bytes] = set()
    for path, old, new in changes:
        if old is not None and new is None:
            _remove(os.path.join(root, path))
            removed_dirs.update(_parents(path))
    for directory in sorted(removed_dirs, key=lambda d: d.count(b"/"), reverse=True):
        # A directory still holding ignored or untracked files stays.
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, directory))
    for path, _old, new in changes:
        if new is None:
            continue
        parts = path.split(b"/")
        for part in parts:
            check_entry_name(part, limits)
        _ensure_parents(root, parts[:-1], force=force, path=path)
        target = os.path.join(root, path)
        if os.path.isdir(target) and not os.path.islink(target):
            if not force:
                raise DirtyWorkspaceError([path.decode("utf-8", "replace")])
            shutil.rmtree(target)
        obj = get(new[1])
        if not isinstance(obj, Blob):
            raise CorruptDataError(f"{path!r} does not name a blob")
        _write(target, new[0], obj.as_raw_string())


def _entries(get: Lookup, sha: bytes | None) -> dict[bytes, Leaf]:
    if sha is None:
        return {}
    tree = get(sha)
    if not isinstance(tree, Tree):
        raise CorruptDataError(f"{sha!r} is not a tree")
    return {name: (mode, sha) for name, mode, sha in tree.iteritems()}


def _parents(path: bytes) -> Iterator[bytes]:
    while b"/" in path:
        path = path.rsplit(b"/", 1)[0]
        yield path


def _ensure_parents(root: bytes, parts: list[bytes], *, force: bool, path: bytes) -> None:
    current = root
    for part in parts:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if not force:
            raise DirtyWorkspaceError([path.decode("utf-8", "replace")])
        os.unlink(current)
        os.mkdir(current)


def _remove(path: bytes) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write(target: bytes, mode: int, data: bytes) -> None:
    tmp = target + b".narrative-tmp"
    _remove(tmp)
    if mode == MODE_LINK:
        os.symlink(data, tmp)
    else:
        perms = 0o777 if mode == MODE_EXEC else 0o666
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perms)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    os.replace(tmp, target)
