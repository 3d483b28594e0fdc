"""What ``codebolt`` and its topology's broker say to each other over the broker socket (pure:
bytes in, values out; the sockets are in ``broker_client.py`` and ``broker.py``).

The caller's side runs before anything else is imported, so the format needs nothing beyond
builtins: no ``json`` (which imports ``re``), no ``struct``. A request is one frame, a 4-byte
big-endian length then that many bytes: the words ``codebolt-broker/2``, the request's kind and
its fields, separated by NUL. NUL is the one byte no argument, path or environment value can
hold, so nothing is escaped; words are the file system's bytes (``os.fsencode``), so an argument
that is not UTF-8 arrives as it was given. The broker answers one ASCII line, ``exit N``
(``stopping`` for a stop); a caller interrupted by Ctrl-C sends ``cancel``.

The socket's name carries :data:`VERSION`, so a caller never reaches a broker of another
format (one left idling by an upgrade): it starts its own. A request whose first word is not
this version's is refused all the same (the connection closed, nothing run).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs the caller's side 2 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "CANCEL",
    "HEADER",
    "MAGIC",
    "MAX_REQUEST",
    "STOPPING",
    "VERSION",
    "exec_fields",
    "exec_request",
    "exit_line",
    "frame",
    "frame_length",
    "parse_exit",
    "unframe",
]

VERSION = 2
MAGIC = f"codebolt-broker/{VERSION}"
MAX_REQUEST = 1024 * 1024
"""Bytes a request may hold (its arguments): more is refused, never buffered."""
CANCEL = b"cancel\n"
STOPPING = b"stopping\n"
HEADER = 4
"""Bytes of a frame's length prefix."""


def frame(kind: str, *words: str) -> bytes:
    """A request of ``kind`` carrying ``words`` (none may contain NUL)."""
    payload = b"\0".join(os.fsencode(word) for word in (MAGIC, kind, *words))
    if len(payload) > MAX_REQUEST:
        raise ValueError(f"a broker request holds at most {MAX_REQUEST} bytes")
    return len(payload).to_bytes(HEADER, "big") + payload


def frame_length(head: bytes) -> int | None:
    """The whole frame's length once ``head`` holds its header, else None; ValueError past
    :data:`MAX_REQUEST`."""
    if len(head) < HEADER:
        return None
    length = int.from_bytes(head[:HEADER], "big")
    if length > MAX_REQUEST:
        raise ValueError(f"a broker request of {length} bytes (at most {MAX_REQUEST})")
    return HEADER + length


def unframe(data: bytes) -> tuple[str, list[str]]:
    """``(kind, words)`` of one whole frame; ValueError for anything else (another version)."""
    length = frame_length(data)
    if length is None or length != len(data):
        raise ValueError("a broker request ended early or ran on")
    magic, _, rest = data[HEADER:].partition(b"\0")
    if magic != MAGIC.encode():
        raise ValueError(f"not a {MAGIC} request")
    kind, *words = rest.split(b"\0")
    return kind.decode("ascii", "replace"), [os.fsdecode(word) for word in words]


_FLAGS = {"all_nodes": "a", "shell": "s", "stdin": "i"}
"""Each boolean of an exec request, and its letter in the request's flags word."""
_FIXED = ("file", "cwd", "flags", "from_node", "timeout")


def exec_fields(request: Mapping[str, Any], cwd: str) -> list[str]:
    """An exec request's words: the topology file, the caller's directory, its flags (letters of
    ``all_nodes``, ``shell``, ``stdin``: ``a``, ``s``, ``i``), ``--from`` and ``--timeout``
    (empty when not given),
    then the positional arguments."""
    flags = "".join(letter for name, letter in _FLAGS.items() if request.get(name))
    optional = [request.get("from_node"), request.get("timeout")]
    return [
        str(request["file"]),
        cwd,
        flags,
        *("" if value is None else str(value) for value in optional),
        *[str(word) for word in request["positionals"]],
    ]


def exec_request(words: list[str]) -> dict[str, Any]:
    """The exec request that :func:`exec_fields` wrote; ValueError when it is not one."""
    if len(words) < len(_FIXED):
        raise ValueError("malformed exec request")
    file, cwd, flags, from_node, timeout = words[: len(_FIXED)]
    if set(flags) - set(_FLAGS.values()):
        raise ValueError("malformed exec request")
    try:
        seconds = float(timeout) if timeout else None
    except ValueError:
        raise ValueError("malformed exec request: its timeout is not a number") from None
    request: dict[str, Any] = {name: letter in flags for name, letter in _FLAGS.items()}
    request.update(
        file=file,
        cwd=cwd,
        from_node=from_node or None,
        timeout=seconds,
        positionals=words[len(_FIXED) :],
    )
    return request


def exit_line(code: int) -> bytes:
    return f"exit {code}\n".encode()


def parse_exit(line: bytes) -> int | None:
    """The exit status an ``exit N`` line gives, None for anything else."""
    word, _, number = line.strip().partition(b" ")
    if word != b"exit" or not number.lstrip(b"-").isdigit():
        return None
    return int(number)
