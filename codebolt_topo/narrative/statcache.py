"""The stat cache: what the last snapshot or restore saw, so the next one hashes only changes.

For every captured file it keeps ``path -> (mtime_ns, size, ino, mode, blob id)``; for every
directory ``path -> (entries, tree id)`` so unchanged directories reuse their tree without
rebuilding it. A file whose stat still matches is not read again, which makes an incremental
snapshot cost one ``lstat`` per file plus work proportional to what changed.

"Racy" entries (modified within :data:`RACY_WINDOW_NS` of the scan that recorded them, where a
later write could keep the same mtime) are never trusted; they are simply hashed again next time.

The file is a small binary format (a checksum guards it); an unreadable cache is discarded, which
only costs one full rehash, never a wrong snapshot.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RACY_WINDOW_NS", "DirEntry", "FileEntry", "StatCache"]

RACY_WINDOW_NS = 50_000_000
"""Covers coarse kernel timestamps (one jiffy is at most 10 ms) with a wide margin."""

FileEntry = tuple[int, int, int, int, bytes]
"""``(mtime_ns, size, ino, mode, hex blob id)``."""
DirEntry = tuple[int, bytes]
"""``(number of captured entries, hex tree id)``."""

_MAGIC = b"CBNSTAT2"
"""Version 2: symlinks leading outside are no longer captured, so version 1 caches (which may
vouch for such links and the trees holding them) are discarded, at the cost of one rehash."""
_HEADER = struct.Struct("<qqII")


@dataclass(slots=True)
class StatCache:
    """In-memory form of the cache; :meth:`load` and :meth:`save` move it to and from disk."""

    files: dict[bytes, FileEntry] = field(default_factory=dict)
    dirs: dict[bytes, DirEntry] = field(default_factory=dict)
    scan_start_ns: int = 0
    racy_window_ns: int = RACY_WINDOW_NS

    @property
    def trusted_before_ns(self) -> int:
        """Entries with an mtime at or after this instant must be hashed again."""
        return self.scan_start_ns - self.racy_window_ns

    @classmethod
    def load(cls, path: Path) -> StatCache:
        """Read the cache at *path*; an absent or damaged file yields an empty cache."""
        try:
            data = path.read_bytes()
            return cls._decode(data)
        except (OSError, ValueError, struct.error, UnicodeDecodeError):
            return cls()

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename) so a crash leaves the old cache."""
        body = self._encode()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(body + hashlib.sha1(body).digest())
        os.replace(tmp, path)

    def _encode(self) -> bytes:
        fpaths = list(self.files)
        dpaths = list(self.dirs)
        fvals = list(self.files.values())
        ints = array("q", [v for entry in fvals for v in entry[:4]])
        counts = array("q", [entry[0] for entry in self.dirs.values()])
        parts = [
            _MAGIC,
            _HEADER.pack(self.scan_start_ns, self.racy_window_ns, len(fpaths), len(dpaths)),
            _blob(b"\0".join(fpaths)),
            ints.tobytes(),
            binascii.unhexlify(b"".join(entry[4] for entry in fvals)),
            _blob(b"\0".join(dpaths)),
            counts.tobytes(),
            binascii.unhexlify(b"".join(entry[1] for entry in self.dirs.values())),
        ]
        return b"".join(parts)

    @classmethod
    def _decode(cls, data: bytes) -> StatCache:
        body, digest = data[:-20], data[-20:]
        if not body.startswith(_MAGIC) or hashlib.sha1(body).digest() != digest:
            raise ValueError("bad stat cache")
        view = memoryview(body)
        pos = len(_MAGIC)
        start, window, nfiles, ndirs = _HEADER.unpack_from(view, pos)
        pos += _HEADER.size
        fpaths, pos = _read_paths(view, pos, nfiles)
        ints = array("q")
        ints.frombytes(view[pos : pos + 32 * nfiles])
        pos += 32 * nfiles
        fshas = binascii.hexlify(view[pos : pos + 20 * nfiles])
        pos += 20 * nfiles
        dpaths, pos = _read_paths(view, pos, ndirs)
        counts = array("q")
        counts.frombytes(view[pos : pos + 8 * ndirs])
        pos += 8 * ndirs
        dshas = binascii.hexlify(view[pos : pos + 20 * ndirs])
        if pos + 20 * ndirs != len(body):
            raise ValueError("bad stat cache length")
        files = {
            p: (
                ints[4 * i],
                ints[4 * i + 1],
                ints[4 * i + 2],
                ints[4 * i + 3],
                fshas[40 * i : 40 * i + 40],
            )
            for i, p in enumerate(fpaths)
        }
        dirs = {p: (counts[i], dshas[40 * i : 40 * i + 40]) for i, p in enumerate(dpaths)}
        return cls(files=files, dirs=dirs, scan_start_ns=start, racy_window_ns=window)


def _blob(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def _read_paths(view: memoryview, pos: int, count: int) -> tuple[list[bytes], int]:
    (length,) = struct.unpack_from("<Q", view, pos)
    pos += 8
    raw = bytes(view[pos : pos + length])
    paths = raw.split(b"\0") if count else []
    if len(paths) != count:
        raise ValueError("bad stat cache paths")
    return paths, pos + length
