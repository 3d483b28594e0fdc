"""Hostile archives, written straight to a file without holding their content in memory.

Each is small on the wire and large (or endless, or exponential) once read: gigabytes of zeros
whose hashes are all correct, a tree naming 10^10 files, hundreds of thousands of objects, a
tar header the size of a file. The memory tests import them in a child process.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dulwich.objects import ObjectID, Tree
from narrative_crafting import snapshot_commit

from codebolt_topo.narrative.packs import object_header
from codebolt_topo.narrative.safety import MODE_DIR, MODE_FILE
from codebolt_topo.narrative.tarsafe import FORMAT

REF = b"refs/narrative/threads/t1"
_PIECE = 1 << 20


class Deflate:
    """A raw deflate stream written into *out*, with zero runs costing no compression time.

    Each piece ends with a full flush, which resets the compressor: the compressed form of a
    MiB of zeros is then the same wherever it falls, so it is made once and repeated.
    *checksum* (``zlib.crc32`` for gzip, ``zlib.adler32`` for zlib) runs over the input.
    """

    _ZEROS = b""

    def __init__(self, out: BinaryIO, checksum: Callable[[bytes, int], int]) -> None:
        self.out, self.checksum = out, checksum
        self.value = checksum(b"", 0 if checksum is zlib.crc32 else 1)
        self.size = 0
        if not Deflate._ZEROS:
            Deflate._ZEROS = _deflated(bytes(_PIECE))

    def data(self, data: bytes) -> None:
        self.out.write(_deflated(data))
        self.value = self.checksum(data, self.value)
        self.size += len(data)

    def zeros(self, size: int) -> None:
        block = bytes(_PIECE)
        for _ in range(size // _PIECE):
            self.out.write(Deflate._ZEROS)
            self.value = self.checksum(block, self.value)
        self.size += size - size % _PIECE
        if size % _PIECE:
            self.data(bytes(size % _PIECE))

    def finish(self) -> None:
        self.out.write(b"\x03\x00")  # an empty final block


def _deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_FULL_FLUSH)


def zero_blob_id(size: int) -> str:
    hasher = hashlib.sha1(b"blob %d\0" % size)
    left = size
    while left:
        hasher.update(bytes(min(_PIECE, left)))
        left -= min(_PIECE, left)
    return hasher.hexdigest()


def _tree(entries: list[tuple[bytes, int, str]]) -> Tree:
    tree = Tree()
    for name, mode, sha in entries:
        tree.add(name, mode, ObjectID(sha.encode()))
    return tree


class PackFile:
    """Write a pack record by record into *out*, hashing as it goes."""

    def __init__(self, out: BinaryIO, count: int) -> None:
        self.out = out
        self.hasher = hashlib.sha1()
        self.emit(b"PACK\0\0\0\2" + count.to_bytes(4, "big"))

    def emit(self, data: bytes) -> None:
        """Append raw pack bytes (a record written by hand)."""
        self.out.write(data)
        self.hasher.update(data)

    def add(self, type_num: int, content: bytes) -> None:
        self.emit(object_header(type_num, len(content)) + zlib.compress(content, 1))

    def add_zeros(self, size: int) -> None:
        self.emit(object_header(3, size))
        packer = zlib.compressobj(9)
        left = size
        while left:
            self.emit(packer.compress(bytes(min(_PIECE, left))))
            left -= min(_PIECE, left)
        self.emit(packer.flush())

    def close(self) -> None:
        self.out.write(self.hasher.digest())


def _bundle_head(out: BinaryIO, commit: bytes) -> None:
    out.write(b"# v2 git bundle\n" + commit + b" " + REF + b"\n\n")


def zero_blobs_bundle(path: Path, count: int, size: int) -> None:
    """A bundle of *count* distinct blobs of about *size* zeros each (a few KB per GB)."""
    sizes = [size - i for i in range(count)]
    tree = _tree([(b"f%d" % i, MODE_FILE, zero_blob_id(s)) for i, s in enumerate(sizes)])
    commit = snapshot_commit(tree)
    with open(path, "wb") as out:
        _bundle_head(out, commit.id)
        pack = PackFile(out, count + 2)
        for s in sizes:
            pack.add_zeros(s)
        pack.add(2, tree.as_raw_string())
        pack.add(1, commit.as_raw_string())
        pack.close()


def tree_bomb_bundle(path: Path, width: int = 10, levels: int = 9) -> int:
    """A bundle of levels + 3 objects naming width ** (levels + 1) files; returns that count."""
    blob = b"x"
    blob_id = hashlib.sha1(b"blob 1\0" + blob).hexdigest()
    level = _tree([(b"f%d" % i, MODE_FILE, blob_id) for i in range(width)])
    trees = [level]
    for _ in range(levels):
        level = _tree([(b"d%d" % i, MODE_DIR, level.id.decode()) for i in range(width)])
        trees.append(level)
    commit = snapshot_commit(level)
    with open(path, "wb") as out:
        _bundle_head(out, commit.id)
        pack = PackFile(out, len(trees) + 2)
        pack.add(3, blob)
        for tree in trees:
            pack.add(2, tree.as_raw_string())
        pack.add(1, commit.as_raw_string())
        pack.close()
    return int(width ** (levels + 1))


def flood_bundle(path: Path, count: int) -> None:
    """*count* distinct small blobs, all in one directory: as many objects as tree entries."""
    names = [b"f%07d" % i for i in range(count)]
    contents = [b"%d\n" % i for i in range(count)]
    raw = b"".join(
        b"100644 " + name + b"\0" + hashlib.sha1(b"blob %d\0%b" % (len(c), c)).digest()
        for name, c in zip(names, contents, strict=True)
    )
    tree_id = hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest()
    holder = Tree()
    holder.set_raw_string(raw, ObjectID(tree_id.encode()))
    commit = snapshot_commit(holder)
    with open(path, "wb") as out:
        _bundle_head(out, commit.id)
        pack = PackFile(out, count + 2)
        for content in contents:
            pack.add(3, content)
        pack.add(2, raw)
        pack.add(1, commit.as_raw_string())
        pack.close()


def spinning_bundle(path: Path) -> int:
    """About 5 KB: a root tree of 2,000 entries (~70 KB inflated) naming one blob, the shape
    that made the pack reader loop forever; returns the bundle's size."""
    blob = b"x = 17\n" * 49
    blob_id = hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()
    tree = _tree([(b"mod_%04d.py" % i, MODE_FILE, blob_id) for i in range(2000)])
    commit = snapshot_commit(tree)
    with open(path, "wb") as out:
        _bundle_head(out, commit.id)
        pack = PackFile(out, 3)
        pack.add(3, blob)
        pack.add(2, tree.as_raw_string())
        pack.add(1, commit.as_raw_string())
        pack.close()
    return path.stat().st_size


def zero_members_tar(path: Path, count: int, size: int) -> None:
    """A tar.gz of *count* members of *size* zeros, its manifest hash-consistent (version 1,
    listing every file, as exports wrote before version 2)."""
    blob_id = zero_blob_id(size)
    tree = _tree([(b"f%d" % i, MODE_FILE, blob_id) for i in range(count)])
    commit = snapshot_commit(tree)
    manifest = {
        "format": FORMAT,
        "version": 1,
        "commit": commit.id.decode(),
        "tree": tree.id.decode(),
        "parents": [],
        "author": commit.author.decode(),
        "committer": commit.committer.decode(),
        "author_time": commit.author_time,
        "commit_time": commit.commit_time,
        "author_timezone": 0,
        "commit_timezone": 0,
        "message": commit.message.decode(),
        "entries": [
            {"path": f"f{i}", "mode": "100644", "blob": blob_id, "size": size} for i in range(count)
        ],
    }
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip, no name, no time
        stream = Deflate(out, zlib.crc32)
        data = json.dumps(manifest).encode()
        stream.data(_tar_header("manifest.json", len(data)) + data + _padding(len(data)))
        for i in range(count):
            stream.data(_tar_header(f"files/f{i}", size))
            stream.zeros(size + len(_padding(size)))
        stream.zeros(2 * tarfile.BLOCKSIZE)
        stream.finish()
        out.write(
            stream.value.to_bytes(4, "little") + (stream.size % (1 << 32)).to_bytes(4, "little")
        )


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return bytes(-size % tarfile.BLOCKSIZE)


def pax_bomb_tar(path: Path, header_bytes: int) -> None:
    """A tar.gz whose first member carries a pax header of *header_bytes* bytes."""
    with tarfile.open(path, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.pax_headers = {"comment": "x" * header_bytes}
        tar.addfile(info, io.BytesIO(b""))


def varint(value: int) -> bytes:
    """A delta header's size: little-endian groups of 7 bits (git's pack format)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def ofs_distance(distance: int) -> bytes:
    """An OFS_DELTA's base distance, in git's big-endian offset encoding."""
    out = bytearray([distance & 0x7F])
    distance >>= 7
    while distance:
        distance -= 1
        out.insert(0, 0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(out)


def delta_flood_bundle(path: Path, count: int) -> None:
    """One base blob and *count* - 1 OFS_DELTAs on it, each a distinct small file, in one
    directory: the most bookkeeping per byte a pack can ask of delta resolution."""
    base = b"the base every delta of this pack is built on\n"
    contents = [base] + [b"%d\n" % i for i in range(1, count)]
    raw = b"".join(
        b"100644 f%07d\0" % i + hashlib.sha1(b"blob %d\0%b" % (len(c), c)).digest()
        for i, c in enumerate(contents)
    )
    holder = Tree()
    holder.set_raw_string(
        raw, ObjectID(hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest().encode())
    )
    commit = snapshot_commit(holder)
    with open(path, "wb") as out:
        _bundle_head(out, commit.id)
        pack = PackFile(out, count + 2)
        at = 12
        for i, content in enumerate(contents):
            if i:
                body = varint(len(base)) + varint(len(content)) + bytes([len(content)]) + content
                record = (
                    object_header(6, len(body)) + ofs_distance(at - 12) + zlib.compress(body, 1)
                )
            else:
                record = object_header(3, len(content)) + zlib.compress(content, 1)
            pack.emit(record)
            at += len(record)
        pack.add(2, raw)
        pack.add(1, commit.as_raw_string())
        pack.close()
