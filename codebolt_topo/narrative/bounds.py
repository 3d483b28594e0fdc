"""Refusing snapshots that must not become files: tree bombs, deep nesting, escaping links.

:class:`SnapshotBounds` wires :class:`~codebolt_topo.narrative.measure.Measurer` to a store
and, during an import, to what the import received: a received tree is read from the import's
side file and its figures kept in flat arrays indexed like the received objects (an import may
carry a million trees), a tree of the store is read through dulwich and its figures kept in
the store's :class:`~codebolt_topo.narrative.measure.MeasureCache`. Import, restore and
tarball export all ask it first, so the same rule holds wherever trees could become files, and
a bomb is refused after measuring each distinct tree once instead of expanding it.
"""

from __future__ import annotations

import binascii
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dulwich.objects import Blob, ObjectID, Tree

from codebolt_topo.narrative.errors import CorruptDataError
from codebolt_topo.narrative.incoming import KEEP_BLOBS, Incoming
from codebolt_topo.narrative.measure import ESCAPES, Measure, Measurer
from codebolt_topo.narrative.safety import MODE_DIR
from codebolt_topo.narrative.trees import IN_ONE_READ, Entry

if TYPE_CHECKING:
    from codebolt_topo.narrative.store import NarrativeStore

__all__ = ["SnapshotBounds"]

_TREE, _BLOB = 2, 3
_UNMEASURED = 0xFFFFFFFF
_MANY = _UNMEASURED - 1
"""A received tree's file count is kept in four bytes, saturating here: far past any limit."""


class SnapshotBounds:
    """Measure snapshot trees of *store* (and of *incoming*, during an import)."""

    def __init__(self, store: NarrativeStore, incoming: Incoming | None = None) -> None:
        self.store = store
        self.incoming = incoming
        self._store_figures: dict[bytes, Measure] = {}
        """Figures computed here for trees of the store (saved to the cache)."""
        self._cached: dict[bytes, Measure] = {}
        """Figures read from the cache ahead of their use."""
        self._files, self._depth, self._climb = array("I"), array("H"), array("I")
        if incoming is not None:
            count = len(incoming.table)
            self._files = array("I", [_UNMEASURED]) * count
            self._depth = array("H", [0]) * count
            self._climb = array("I", [0]) * count
        self._measurer = Measurer(
            store.limits, self._entries, self._target, self._known, self._record
        )

    def check(self, tree: bytes, what: str) -> Measure:
        """Refuse tree *tree* (binary or hex id) past the limits or with an escaping link."""
        sha = binascii.unhexlify(tree) if len(tree) == 40 else tree
        return self._measurer.check(sha, what)

    def save(self) -> None:
        """Keep every figure computed in the store's cache (after an import is installed)."""
        cache = self.store.measures
        cache.put(self._store_figures.items())
        if self.incoming is not None:
            table = self.incoming.table
            cache.put(
                (table.sha(i), Measure(self._files[i], self._depth[i], self._climb[i]))
                for i in range(len(self._files))
                if self._files[i] != _UNMEASURED
            )
        self._store_figures.clear()

    def _received(self, sha: bytes) -> int:
        if self.incoming is None:
            return -1
        index = self.incoming.table.find(sha)
        return index if index < self.incoming.sent else -1

    def _known(self, sha: bytes) -> Measure | None:
        index = self._received(sha)
        if index >= 0:
            if self._files[index] == _UNMEASURED:
                return None
            return Measure(self._files[index], self._depth[index], self._climb[index])
        found = self._store_figures.get(sha) or self._cached.get(sha)
        if found is None:
            found = self.store.measures.get(sha)
        return found

    def _record(self, sha: bytes, figures: Measure) -> None:
        index = self._received(sha)
        if index >= 0:  # 10 bytes a received object: counts saturate to fit
            self._files[index] = min(figures.files, _MANY)
            self._depth[index] = min(figures.depth, 0xFFFF)
            self._climb[index] = min(figures.climb, ESCAPES)
        else:
            self._store_figures[sha] = figures

    def _entries(self, sha: bytes) -> Iterator[Entry]:
        index = self._received(sha)
        if index >= 0:
            assert self.incoming is not None
            if self.incoming.table.types[index] != _TREE:
                raise CorruptDataError(f"{sha.hex()} is not a tree")
            if self.incoming.table.sizes[index] > IN_ONE_READ:
                return self.incoming.tree(index)
            entries = list(self.incoming.tree(index))
            # The subtrees a received tree shares with the store (an incremental import:
            # every unchanged directory beside a change) are looked up in one query.
            shared = [
                child
                for _name, mode, child in entries
                if mode == MODE_DIR
                and self._received(child) < 0
                and child not in self._store_figures
                and child not in self._cached
            ]
            if shared:
                self._cached.update(self.store.measures.get_many(shared))
            return iter(entries)
        tree = self.store.repo.object_store[ObjectID(binascii.hexlify(sha))]
        if not isinstance(tree, Tree):
            raise CorruptDataError(f"{sha.hex()} is not a tree")
        return ((name, mode, binascii.unhexlify(child)) for name, mode, child in tree.iteritems())

    def _target(self, sha: bytes) -> bytes | None:
        index = self._received(sha)
        if index >= 0:
            assert self.incoming is not None
            table = self.incoming.table
            if table.types[index] != _BLOB or table.sizes[index] > KEEP_BLOBS:
                return None
            return self.incoming.content(index)
        blob = self.store.repo.object_store[ObjectID(binascii.hexlify(sha))]
        if not isinstance(blob, Blob) or len(blob.data) > KEEP_BLOBS:
            return None
        return bytes(blob.data)
