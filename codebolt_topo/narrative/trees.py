"""Reading a received tree entry by entry, in bounded memory, and checking each entry.

A tree may be as large as :attr:`Limits.max_object_bytes`; parsing it whole (dulwich builds a
Python tuple per entry) would cost several times its size. :func:`iter_tree` reads the raw
tree from where the import kept it in chunks and yields one entry at a time, refusing the
malformed, and :func:`check_tree_entry` applies what every received entry must satisfy: a safe
name, a mode we write, and git's order (sorted, no name twice), as ``git fsck`` requires.
"""

from __future__ import annotations

from binascii import unhexlify
from collections.abc import Callable, Iterator

from dulwich.errors import ObjectFormatException
from dulwich.objects import parse_tree

from codebolt_topo.narrative.errors import CorruptDataError, UnsafeInputError
from codebolt_topo.narrative.limits import Limits
from codebolt_topo.narrative.safety import ALLOWED_MODES, MODE_DIR, check_entry_name

__all__ = ["IN_ONE_READ", "Entry", "check_tree_entry", "iter_tree", "sort_key"]

Entry = tuple[bytes, int, bytes]
"""``(name, mode, binary id)``."""

IN_ONE_READ = 1024 * 1024
_CHUNK = 65536
_MODE_DIGITS = frozenset(b"01234567")


def iter_tree(
    read: Callable[[int, int], bytes], offset: int, size: int, limits: Limits
) -> Iterator[Entry]:
    """Entries of the raw tree of *size* bytes at *offset*, read through *read(offset, n)*.

    A tree up to :data:`IN_ONE_READ` bytes is read at once and parsed by dulwich's C parser;
    a larger one is parsed here, piece by piece.
    """
    if size <= IN_ONE_READ:
        try:
            parsed = parse_tree(read(offset, size), 20)
        except ObjectFormatException as exc:
            raise CorruptDataError(f"malformed tree: {exc}") from None
        return ((name, mode, unhexlify(sha)) for name, mode, sha in parsed)
    return _pieces(read, offset, size, limits)


def _pieces(
    read: Callable[[int, int], bytes], offset: int, size: int, limits: Limits
) -> Iterator[Entry]:
    longest = max(_CHUNK, limits.max_name_bytes + 32)
    buf, pos, taken = b"", 0, 0
    while True:
        if len(buf) - pos < longest and taken < size:
            more = read(offset + taken, min(_CHUNK, size - taken))
            taken += len(more)
            buf, pos = buf[pos:] + more, 0
        if pos >= len(buf):
            return
        space = buf.find(b" ", pos, pos + 8)
        nul = buf.find(b"\0", space + 1) if space > pos else -1
        if nul < 0 and space > pos and len(buf) - pos >= longest:
            check_entry_name(buf[space + 1 :], limits)  # longer than any name may be
        if nul < 0 or nul + 21 > len(buf):
            raise CorruptDataError("malformed or truncated tree entry")
        digits = buf[pos:space]
        if not set(digits) <= _MODE_DIGITS:
            raise CorruptDataError(f"malformed mode {digits[:8]!r} in a tree entry")
        yield buf[space + 1 : nul], int(digits, 8), buf[nul + 1 : nul + 21]
        pos = nul + 21


def sort_key(name: bytes, mode: int) -> bytes:
    """Where git sorts an entry: directories as if their name ended with ``/``."""
    return name + b"/" if mode == MODE_DIR else name


def check_tree_entry(name: bytes, mode: int, previous: bytes, limits: Limits) -> bytes:
    """Refuse an unsafe name or mode, or an entry out of git's order; returns its sort key."""
    check_entry_name(name, limits)
    if mode not in ALLOWED_MODES:
        raise UnsafeInputError(f"unsupported mode {mode:o} for {name!r}")
    key = sort_key(name, mode)
    if key <= previous:
        raise CorruptDataError(f"tree entries out of order or named twice at {name!r}")
    return key
