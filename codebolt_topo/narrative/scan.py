"""Walk a workspace into git trees, hashing only what the stat cache cannot vouch for.

The walk honours ``.gitignore`` files (dulwich's pattern matcher, git's precedence: the deepest
file that has a matching pattern decides, the last matching pattern in a file wins, an excluded
directory is never entered) and the workspace's ``.git/info/exclude`` (read only). ``.git`` entries,
in any case, are never captured. Sockets, FIFOs and devices are skipped: git cannot store them.
Symlinks leading outside the workspace are skipped too
(:func:`~codebolt_topo.narrative.safety.check_link`), and so are names holding a backslash
(a path separator elsewhere, refused by :func:`~codebolt_topo.narrative.safety.check_entry_name`):
no import would accept them, and a snapshot is made to be restored elsewhere.

Ignore rules are only evaluated where they can have changed: for a path the cache already knows,
and when no ``.gitignore`` on its way from the root changed, the previous answer (captured) stands.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG

from dulwich.ignore import IgnoreFilter, read_ignore_patterns
from dulwich.objects import Blob, ObjectID, ShaFile, Tree

from codebolt_topo.narrative.safety import (
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    is_dotgit,
    link_climb,
)
from codebolt_topo.narrative.statcache import DirEntry, FileEntry, StatCache

__all__ = ["EXCLUDE_KEY", "Scan", "scan_workspace"]

EXCLUDE_KEY = b"//info/exclude"
"""Cache key for the workspace's ``.git/info/exclude`` (``//`` never occurs in a real path)."""

_Filters = tuple[tuple[int, IgnoreFilter], ...]


@dataclass(slots=True)
class Scan:
    """Result of one walk: the root tree, the new cache content and the objects to store."""

    root_tree: bytes
    files: dict[bytes, FileEntry] = field(default_factory=dict)
    dirs: dict[bytes, DirEntry] = field(default_factory=dict)
    new_objects: list[ShaFile] = field(default_factory=list)
    hashed: list[bytes] = field(default_factory=list)
    """Paths whose content had to be read (cache misses)."""


class _Walker:
    def __init__(self, root: bytes, cache: StatCache, store_objects: bool) -> None:
        self.root = root
        self.cache = cache
        self.trusted_before = cache.trusted_before_ns
        self.store_objects = store_objects
        self.known = {entry[4] for entry in cache.files.values()}
        self.known.update(entry[1] for entry in cache.dirs.values())
        self.result = Scan(root_tree=b"")

    def run(self) -> Scan:
        filters, changed = self._global_filters()
        tree, _count, _changed = self._walk(b"", filters, changed)
        self.result.root_tree = tree
        return self.result

    def _global_filters(self) -> tuple[_Filters, bool]:
        path = os.path.join(self.root, b".git", b"info", b"exclude")
        try:
            st = os.stat(path)
            with open(path, "rb") as handle:
                filt = IgnoreFilter(read_ignore_patterns(handle))
        except (FileNotFoundError, NotADirectoryError):
            return (), EXCLUDE_KEY in self.cache.files
        key = (st.st_mtime_ns, st.st_size, st.st_ino, 0, b"0" * 40)
        self.result.files[EXCLUDE_KEY] = key
        return ((0, filt),), self.cache.files.get(EXCLUDE_KEY) != key

    def _walk(self, rel: bytes, filters: _Filters, rules_changed: bool) -> tuple[bytes, int, bool]:
        """Return ``(tree id, captured entries, changed since the cache)`` for directory *rel*."""
        abspath = os.path.join(self.root, rel) if rel else self.root
        prefix = rel + b"/" if rel else b""
        depth = rel.count(b"/") + 1 if rel else 0
        with os.scandir(abspath) as it:
            entries = [e for e in it if not is_dotgit(e.name) and b"\\" not in e.name]
        filters, rules_changed = self._dir_filters(entries, prefix, depth, filters, rules_changed)
        # Locals: this loop runs once per file of the workspace on every snapshot.
        cached_files, cached_dirs = self.cache.files, self.cache.dirs
        files_out, trusted_before = self.result.files, self.trusted_before
        out: list[tuple[bytes, int, bytes]] = []
        changed = rel not in cached_dirs
        for entry in entries:
            name = entry.name
            path = prefix + name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            fmt = S_IFMT(st.st_mode)
            if fmt == S_IFDIR:
                known = path in cached_dirs and not rules_changed
                if filters and not known and self._ignored(path, filters, True):
                    continue
                tree, count, sub_changed = self._walk(path, filters, rules_changed)
                changed = changed or sub_changed
                if count:
                    out.append((name, MODE_DIR, tree))
                continue
            if fmt == S_IFREG:
                mode = MODE_EXEC if st.st_mode & 0o100 else MODE_FILE
            elif fmt == S_IFLNK:
                mode = MODE_LINK
            else:
                continue
            cached = cached_files.get(path)
            recheck = cached is None or rules_changed
            if filters and recheck and self._ignored(path, filters, False):
                continue
            mtime = st.st_mtime_ns
            if cached is not None and mtime < trusted_before:
                same = (mtime, st.st_size, st.st_ino, mode, cached[4])
                if same == cached:
                    files_out[path] = cached  # unchanged: keep the cache's own entry
                    out.append((name, mode, cached[4]))
                    continue
            found = self._hash(os.path.join(abspath, name), mode, path)
            if found is None:
                continue
            self.result.hashed.append(path)
            changed = changed or cached is None or cached[4] != found or cached[3] != mode
            files_out[path] = (mtime, st.st_size, st.st_ino, mode, found)
            out.append((name, mode, found))
        previous = self.cache.dirs.get(rel)
        if not changed and previous is not None and previous[0] == len(out):
            tree_id = previous[1]
        else:
            changed = True
            tree_id = self._tree(out)
        self.result.dirs[rel] = (len(out), tree_id)
        return tree_id, len(out), changed

    def _dir_filters(
        self,
        entries: list[os.DirEntry[bytes]],
        prefix: bytes,
        depth: int,
        filters: _Filters,
        rules_changed: bool,
    ) -> tuple[_Filters, bool]:
        key = prefix + b".gitignore"
        ignore_file = next((e for e in entries if e.name == b".gitignore"), None)
        if ignore_file is None or not ignore_file.is_file(follow_symlinks=False):
            return filters, rules_changed or key in self.cache.files
        with open(ignore_file.path, "rb") as handle:
            filt = IgnoreFilter(read_ignore_patterns(handle))
        st = ignore_file.stat(follow_symlinks=False)
        cached = self.cache.files.get(key)
        fresh = cached is None or cached[:3] != (st.st_mtime_ns, st.st_size, st.st_ino)
        fresh = fresh or st.st_mtime_ns >= self.trusted_before
        return (*filters, (depth, filt)), rules_changed or fresh

    @staticmethod
    def _ignored(path: bytes, filters: _Filters, is_dir: bool) -> bool:
        parts = path.split(b"/")
        for base, filt in reversed(filters):
            relname = b"/".join(parts[base:])
            for pattern in reversed(filt.patterns):
                if pattern.matches(relname, is_dir):
                    return pattern.is_exclude
        return False

    def _hash(self, path: bytes, mode: int, rel: bytes) -> bytes | None:
        try:
            if mode == MODE_LINK:
                data = os.readlink(path)
                climb = link_climb(data)
                if climb is None or climb > rel.count(b"/"):
                    return None  # leads outside: not captured (see the module docstring)
            else:
                with open(path, "rb") as handle:
                    data = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        blob = Blob.from_string(data)
        sha = blob.id
        self._keep(sha, blob)
        return sha

    def _tree(self, entries: Iterable[tuple[bytes, int, bytes]]) -> bytes:
        tree = Tree()
        for name, mode, sha in entries:
            tree.add(name, mode, ObjectID(sha))
        sha = tree.id
        self._keep(sha, tree)
        return sha

    def _keep(self, sha: bytes, obj: ShaFile) -> None:
        if self.store_objects and sha not in self.known:
            self.known.add(sha)
            self.result.new_objects.append(obj)


def scan_workspace(root: str | os.PathLike[str], cache: StatCache, *, store: bool = True) -> Scan:
    """Walk *root* against *cache*. With ``store=False`` only ids are computed (dirty checks)."""
    return _Walker(os.fsencode(root), cache, store).run()
