"""Reading a peer's tar.gz as a stream, in bounded memory, checking each member first.

Nothing is extracted: :func:`read_tar` yields each member, checked by :func:`check_member`,
with a function reading its content in pieces, so a member's content never has to fit in
memory. Three guards make that hold whatever the archive says:

* :class:`BoundedGunzip` counts what it reads (``max_archive_bytes``) and what it inflates
  (``max_unpacked_bytes``), and asks for bounded pieces;
* :class:`ForwardReader` serves :mod:`tarfile` a seekable file that only ever moves forward
  (so tarfile reads headers itself instead of through its stream buffer) and refuses any single
  read larger than :data:`MAX_READ`, which is how tarfile would load a pax or GNU long-name
  header of any declared size into memory;
* tarfile's list of members read so far is emptied as it grows.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from codebolt_topo.narrative.errors import CorruptDataError, LimitExceededError, UnsafeInputError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.safety import check_link, check_relative_path

__all__ = ["FORMAT", "MAX_READ", "BoundedGunzip", "ForwardReader", "check_member", "read_tar"]

FORMAT = "codebolt-narrative-snapshot"
MAX_READ = 4 * 1024 * 1024
"""Largest read tarfile may make at once (header records, and our own content pieces)."""
PIECE = 1024 * 1024
"""Content is read in pieces of this size."""

Reader = Callable[[], Iterator[bytes]]
Member = tuple[tarfile.TarInfo, list[bytes], Reader]
"""A checked member, its path under ``files/`` split into checked parts (empty for the
manifest), and a function reading its content in pieces."""


class BoundedGunzip(io.RawIOBase):
    """Inflate gzip from *source* lazily; refuse past *archive_limit* in or *limit* out."""

    def __init__(self, source: BinaryIO, archive_limit: int, limit: int) -> None:
        self._source = source
        self._archive_limit, self._read = archive_limit, 0
        self._limit, self._out = limit, 0
        self._inflater = zlib.decompressobj(wbits=31)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), PIECE)
        chunk = b""
        while not chunk and not self._inflater.eof:
            if self._inflater.unconsumed_tail:
                chunk = self._inflater.decompress(self._inflater.unconsumed_tail, want)
                continue
            feed = self._source.read(65536)
            if not feed:
                raise CorruptDataError("truncated gzip stream")
            self._read += len(feed)
            check_limit("tarball size", self._read, self._archive_limit)
            chunk = self._inflater.decompress(feed, want)
        self._out += len(chunk)
        if self._out > self._limit:
            raise LimitExceededError(f"tarball inflates beyond the limit ({self._limit} bytes)")
        buffer[: len(chunk)] = chunk
        return len(chunk)


class ForwardReader(io.RawIOBase):
    """A file tarfile may seek in, forward only, with no read larger than :data:`MAX_READ`."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise CorruptDataError("tarball would need reading backwards")
        while self._pos < target:
            if not self.read(min(PIECE, target - self._pos)):
                break
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ:
            raise LimitExceededError(f"tarball header or record larger than {MAX_READ} bytes")
        data = self._stream.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(min(len(buffer), MAX_READ))
        buffer[: len(data)] = data
        return len(data)


def read_tar(source: BinaryIO, limits: Limits) -> Iterator[Member]:
    """Each file, symlink or directory member of the tar.gz *source*, checked, in order.

    The reader given with a regular file yields its content in pieces (read it before asking
    for the next member). Refuses more than ``max_entries`` members, a member past
    ``max_object_bytes`` and a total past ``max_unpacked_bytes``.
    """
    gunzip = io.BufferedReader(
        BoundedGunzip(source, limits.max_archive_bytes, limits.max_unpacked_bytes), PIECE
    )
    try:
        with tarfile.open(
            fileobj=ForwardReader(gunzip),
            mode="r:",
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            count = total = 0
            while True:
                member = tar.next()
                tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every member
                if member is None:
                    return
                count += 1
                check_limit("tarball members", count, limits.max_entries)
                parts = check_member(member, limits)
                check_limit("member size", member.size, limits.max_object_bytes)
                total += member.size
                check_limit("unpacked size", total, limits.max_unpacked_bytes)
                yield member, parts, _content(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
        raise CorruptDataError(f"corrupt tarball: {exc}") from exc


def check_member(member: tarfile.TarInfo, limits: Limits) -> list[bytes]:
    """Refuse escapes, links leading outside, hard links, devices, FIFOs and setuid bits.

    Returns the member's path under ``files/`` in checked parts (empty for the manifest).
    """
    name = member.name
    check_limit(
        "member name length", len(name.encode("utf-8", "surrogateescape")), limits.max_name_bytes
    )
    if name.startswith("/") or ".." in name.split("/"):
        raise UnsafeInputError(f"member {name!r} escapes the archive")
    if member.islnk():
        raise UnsafeInputError(f"hard link {name!r} -> {member.linkname!r} refused")
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeInputError(f"device or FIFO member {name!r} refused")
    if not (member.isreg() or member.issym() or member.isdir()):
        raise UnsafeInputError(f"unsupported member type for {name!r}")
    if member.mode & 0o7000:
        raise UnsafeInputError(f"member {name!r} has setuid/setgid/sticky bits")
    if name == "manifest.json" and member.isreg():
        return []
    if not name.startswith("files/"):
        raise UnsafeInputError(f"unexpected member {name!r}")
    parts = check_relative_path(name[len("files/") :].rstrip("/"), limits)
    if member.issym():
        check_link(b"/".join(parts), member.linkname.encode("utf-8", "surrogateescape"))
    return parts


def _content(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Reader:
    def pieces() -> Iterator[bytes]:
        # Read after read_tar yielded the member, outside its translation of tarfile errors.
        try:
            handle = tar.extractfile(member) if member.isreg() else None
            if handle is None:
                return
            left = member.size
            while left:
                piece = handle.read(min(PIECE, left))
                if not piece:
                    raise CorruptDataError(f"member {member.name!r} is truncated")
                left -= len(piece)
                yield piece
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise CorruptDataError(f"corrupt tarball at {member.name!r}: {exc}") from exc

    return pieces
