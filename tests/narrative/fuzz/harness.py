"""What the fuzz targets share: one store to import into, inputs completed into archives.

Mutated inputs would almost never get past a pack's trailing SHA-1 or a gzip stream's CRC, and
the fuzzer would only ever exercise those two checks. So a pack input is a bundle without its
trailer (:func:`bundle_of` appends the right one) and a tar input is an uncompressed tar
(:func:`tgz_of` compresses it): every mutation reaches the readers and the checks behind them.

Every import runs with small limits, so one input is quick; an input may be refused
(:class:`~codebolt_topo.narrative.errors.NarrativeError`) and nothing else: any other exception,
an input that runs past libFuzzer's ``-timeout`` or memory past ``-rss_limit_mb`` is a finding.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tempfile
from pathlib import Path

from codebolt_topo.narrative import Limits, NarrativeError, NarrativeStore

__all__ = ["SEEDS", "bundle_of", "import_bundle", "import_tar", "tgz_of"]

SEEDS = Path(__file__).with_name("corpus")
LIMITS = Limits(
    max_archive_bytes=4 << 20,
    max_unpacked_bytes=16 << 20,
    max_object_bytes=4 << 20,
    max_entries=20_000,
    max_refs=64,
    max_path_depth=64,
)
_store: NarrativeStore | None = None


def _opened() -> NarrativeStore:
    """The store every input imports into, holding the base history thin packs build on."""
    global _store
    if _store is None:
        # libFuzzer ends the process from C (no atexit): the test names a folder it removes.
        parent = os.environ.get("NARRATIVE_FUZZ_TMP")
        base = Path(tempfile.mkdtemp(prefix="narrative-fuzz-", dir=parent))
        (base / "ws").mkdir()
        _store = NarrativeStore.open(base / "state", base / "ws", "fuzz", limits=LIMITS)
        _store.import_bundle(bundle_of((SEEDS / "base.bundle-notrailer").read_bytes()), "seed")
    return _store


def bundle_of(data: bytes) -> bytes:
    """*data* (a bundle without its pack's trailing SHA-1) with the right trailer."""
    end = data.find(b"\n\n")
    if end < 0:
        return data
    return data + hashlib.sha1(data[end + 2 :]).digest()


def tgz_of(data: bytes) -> bytes:
    """*data* (an uncompressed tar) as a tar.gz."""
    return gzip.compress(data, compresslevel=1, mtime=0)


def import_bundle(data: bytes) -> None:
    with contextlib.suppress(NarrativeError):
        _opened().import_bundle(io.BytesIO(bundle_of(data)), "peer", copies=True)


def import_tar(data: bytes) -> None:
    with contextlib.suppress(NarrativeError):
        _opened().import_tar(io.BytesIO(tgz_of(data)))
