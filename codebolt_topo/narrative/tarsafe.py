"""Reading a peer's tar.gz safely: bounded inflation, member checks, no extraction.

Nothing is ever written to disk here: members are read into memory through
:class:`BoundedGunzip`, which refuses to inflate past the configured limit, and each member is
checked before its data is read (see :func:`check_member` for what is refused and why).
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from typing import Any

from codebolt_topo.narrative.errors import CorruptDataError, LimitExceededError, UnsafeInputError
from codebolt_topo.narrative.limits import Limits, check_limit
from codebolt_topo.narrative.safety import check_relative_path, link_stays_inside

__all__ = ["FORMAT", "BoundedGunzip", "Members", "check_member", "read_members"]

FORMAT = "codebolt-narrative-snapshot"


class BoundedGunzip(io.RawIOBase):
    """Inflate gzip lazily and refuse to produce more than *limit* bytes (bomb guard)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._pos, self._limit, self._out = memoryview(data), 0, limit, 0
        self._inflater = zlib.decompressobj(wbits=31)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        chunk = b""
        while not chunk and not self._inflater.eof:
            if self._inflater.unconsumed_tail:
                chunk = self._inflater.decompress(self._inflater.unconsumed_tail, want)
            elif self._pos < len(self._data):
                feed = self._data[self._pos : self._pos + 65536]
                self._pos += len(feed)
                chunk = self._inflater.decompress(feed, want)
            else:
                raise CorruptDataError("truncated gzip stream")
        self._out += len(chunk)
        if self._out > self._limit:
            raise LimitExceededError(f"tarball inflates beyond the limit ({self._limit} bytes)")
        buffer[: len(chunk)] = chunk
        return len(chunk)


Members = dict[str, tarfile.TarInfo | bytes]
"""Path under ``files/`` → file content, or the TarInfo of a symlink."""


def read_members(data: bytes, limits: Limits) -> tuple[dict[str, Any], Members]:
    """Return the manifest and every member's content, after checking each one."""
    manifest: dict[str, Any] | None = None
    members: Members = {}
    stream = io.BufferedReader(BoundedGunzip(data, limits.max_unpacked_bytes))
    total = count = 0
    try:
        with tarfile.open(
            fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for member in tar:
                count += 1
                check_limit("tarball members", count, limits.max_entries)
                check_member(member, limits)
                total += member.size
                check_limit("member size", member.size, limits.max_object_bytes)
                check_limit("unpacked size", total, limits.max_unpacked_bytes)
                if member.isdir():
                    continue
                if member.name == "manifest.json":
                    if manifest is not None or members:
                        raise UnsafeInputError("manifest.json must come first, once")
                    check_limit("manifest size", member.size, limits.max_header_bytes)
                    manifest = _load_manifest(_read(tar, member))
                    continue
                if manifest is None:
                    raise UnsafeInputError("manifest.json must be the first member")
                path = member.name[len("files/") :]
                if path in members:
                    raise UnsafeInputError(f"duplicate member {member.name!r}")
                members[path] = member if member.issym() else _read(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
        raise CorruptDataError(f"corrupt tarball: {exc}") from exc
    if manifest is None:
        raise CorruptDataError("tarball has no manifest.json")
    return manifest, members


def check_member(member: tarfile.TarInfo, limits: Limits) -> None:
    """Refuse escapes, links leading outside, hard links, devices, FIFOs and setuid bits."""
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
        return
    if not name.startswith("files/"):
        raise UnsafeInputError(f"unexpected member {name!r}")
    parts = check_relative_path(name[len("files/") :].rstrip("/"), limits)
    if member.issym():
        target = member.linkname.encode("utf-8", "surrogateescape")
        if not link_stays_inside(parts, target):
            raise UnsafeInputError(f"symlink {name!r} -> {member.linkname!r} leads outside")


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise CorruptDataError(f"member {member.name!r} has no data")
    data = handle.read()
    if len(data) != member.size:
        raise CorruptDataError(f"member {member.name!r} is truncated")
    return data


def _load_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise CorruptDataError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptDataError("manifest.json is not a narrative snapshot manifest")
    if manifest.get("version") != 1:
        raise CorruptDataError(f"unsupported manifest version {manifest.get('version')!r}")
    return manifest
