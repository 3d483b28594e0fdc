"""How many files, how deep: what a snapshot's tree would become on restore.

Trees may share subtrees, so a handful of objects can name exponentially many paths: a tree of
twenty entries that all point at one subtree of twenty entries, and so on ten levels down, is a
few kilobytes in a bundle and 10^13 files on restore (a "git bomb", the tree-shaped
decompression bomb). Import therefore measures every incoming snapshot's tree, counting each
distinct tree once (memoised), and refuses one that would restore to more than
``Limits.max_entries`` files or nest deeper than ``Limits.max_path_depth``.
"""

from __future__ import annotations

from collections.abc import Callable

from dulwich.objects import ShaFile, Tree

from codebolt_topo.narrative.errors import CorruptDataError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.safety import MODE_DIR

__all__ = ["Expansion", "check_expansion"]

Expansion = dict[bytes, tuple[int, int]]
"""Memo: tree id -> (files under it, directory levels including itself)."""


def check_expansion(
    get: Callable[[bytes], ShaFile | None], root: bytes, limits: Limits, memo: Expansion
) -> None:
    """Raise LimitExceededError when tree *root* expands beyond *limits* (see the module doc).

    *memo* may be shared between calls: commits of one thread share most of their trees.
    """
    files, depth = _measure(get, root, limits, memo, 1)
    check_limit("files in one snapshot", files, limits.max_entries)
    check_limit("path depth", depth, limits.max_path_depth)


def _measure(
    get: Callable[[bytes], ShaFile | None],
    tree_id: bytes,
    limits: Limits,
    memo: Expansion,
    level: int,
) -> tuple[int, int]:
    known = memo.get(tree_id)
    if known is not None:
        return known
    check_limit("path depth", level, limits.max_path_depth)  # bounds the recursion too
    tree = get(tree_id)
    if not isinstance(tree, Tree):
        raise CorruptDataError(f"tree {tree_id.decode()} is missing")
    files, depth = 0, 0
    for _name, mode, sha in tree.iteritems():
        if mode == MODE_DIR:
            sub_files, sub_depth = _measure(get, sha, limits, memo, level + 1)
            files += sub_files
            depth = max(depth, sub_depth)
        else:
            files += 1
    memo[tree_id] = (files, depth + 1)
    return files, depth + 1
