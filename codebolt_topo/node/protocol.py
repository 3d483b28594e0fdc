"""The node protocol, sans I/O: codec for control and data frames, plus small state machines.

Nothing here touches a socket or an event loop. The websockets adapters (``server.py``,
``link.py``, ``codebolt_topo.client``) feed frames in and send what comes out, so every rule of
``docs/protocol.md`` can be tested in microseconds.

Control messages are plain ``dict`` objects (decoded JSON) whose shape :func:`decode` has
checked; the ``TypedDict`` classes below document the shapes for readers and type checkers.
Data frames are ``bytes``: a 13-byte header (``!BIQ``: stream, channel, offset) and the payload,
which is never copied on decode (a ``memoryview``) and copied once on encode.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from typing import Any, Final, Generic, TypeVar

from pydantic_core import from_json, to_json

from codebolt_topo.errors import ProtocolError

__all__ = [
    "CHUNK_SIZE",
    "ERROR_CODES",
    "HEADER",
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "SNAPSHOT_WHEN",
    "STDERR",
    "STDIN",
    "STDOUT",
    "STREAM_NAMES",
    "SUBPROTOCOL",
    "WRITE_LIMIT",
    "ChannelTable",
    "JobStream",
    "RequestTracker",
    "decode",
    "encode",
    "error_message",
    "fingerprint",
    "pack_data",
    "rechannel",
    "resume_offsets",
    "targets_of",
    "unpack_data",
]

SUBPROTOCOL: Final = "codebolt.v2"
"""v2: the message that ends a request's last open target carries ``done`` (v1 sent a separate
``done`` frame); a v1 peer would wait for it forever, so the versions refuse each other."""
STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
STREAM_NAMES: Final = ("stdin", "stdout", "stderr")
HEADER: Final = struct.Struct("!BIQ")
HEADER_SIZE: Final = HEADER.size
CHUNK_SIZE: Final = 256 * 1024
"""Largest payload an executor or client puts in one data frame."""
MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024
"""Largest frame a connection accepts: room for big ``configure`` pushes and env blocks."""
WRITE_LIMIT: Final = 1024 * 1024
"""Bytes a connection may queue in its transport before ``send`` waits for the socket: a few
frames, so a hop relays the next frame while the kernel drains the last (bounded memory)."""
_MAX_CH: Final = 0xFFFFFFFF

ERROR_CODES: Final = frozenset({
    "bad-request", "forbidden", "gateway-inactive", "unreachable", "hop-limit", "loop",
    "not-found", "spawn-failed", "cancelled", "peer-lost", "internal", "truncated", "conflict",
})

_STR = (str,)
_INT = (int,)
_OPT_STR = (str, type(None))
_LIST = (list,)
_DICT = (dict,)
_ANY: tuple[type, ...] = (object,)

# type -> {field: (accepted types, required)}. Unknown fields are ignored so messages can grow.
_SCHEMA: Final[dict[str, dict[str, tuple[tuple[type, ...], bool]]]] = {
    "exec": {"id": (_STR, True), "target": ((str, list), True), "argv": (_LIST, False),
             "shell": (_STR, False), "env": (_DICT, False), "cwd": (_OPT_STR, False),
             "timeout": ((int, float, type(None)), False), "stdin": ((bool,), False),
             "hops": (_INT, False), "path": (_LIST, False), "origin": (_STR, False),
             "digest": (_STR, False), "resume": (_DICT, False), "snapshot": (_DICT, False)},
    "attach": {"id": (_STR, True), "target": ((str, list), True), "hops": (_INT, False),
               "path": (_LIST, False), "origin": (_STR, False), "resume": (_DICT, False)},
    "ack": {"ch": (_INT, True), "stdout": (_INT, True), "stderr": (_INT, True)},
    "detach": {"id": (_STR, True)},
    "cancel": {"id": (_STR, True)},
    "signal": {"ch": (_INT, True), "signal": (_STR, True)},
    "eof": {"ch": (_INT, True)},
    "notify": {"kind": (_STR, True), "data": (_ANY, False), "ch": (_INT, False),
               "id": (_STR, False), "node": (_OPT_STR, False)},
    "configure": {"config": (_DICT, True), "id": (_STR, False)},
    "info": {"id": (_STR, False), "detail": ((bool,), False)},
    "started": {"id": (_STR, True), "ch": (_INT, True), "node": (_STR, True),
                "pid": ((int, type(None)), False), "path": (_LIST, False),
                "window": (_INT, False)},
    "exit": {"ch": (_INT, True), "node": (_STR, True), "code": ((int, type(None)), False),
             "signal": (_OPT_STR, False), "duration": ((int, float), False),
             "timed_out": ((bool,), False), "cancelled": ((bool,), False),
             "stdout_bytes": (_INT, False), "stderr_bytes": (_INT, False),
             "id": (_STR, False), "done": ((bool,), False), "snapshots": (_LIST, False)},
    "error": {"id": (_OPT_STR, False), "node": (_OPT_STR, False), "hop": (_OPT_STR, False),
              "code": (_STR, True), "message": (_STR, True), "ch": (_INT, False),
              "done": ((bool,), False)},
    "done": {"id": (_STR, True)},
    "configured": {"generation": (_INT, True), "id": (_STR, False)},
}
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def encode(message: dict[str, Any]) -> str:
    """Serialize a control message as compact JSON (the text of one frame).

    pydantic-core's serializer (already here for the models) is 4x faster than ``json`` on these
    small messages, and every hop encodes each relayed control message once."""
    return to_json(message).decode()


def decode(text: str | bytes) -> dict[str, Any]:
    """Parse one control frame and check it against its type's required fields.

    Raises :class:`ProtocolError` for invalid JSON, a non-object, a missing or unknown ``t``, or
    a known field of the wrong type. The ``info`` reply shares its type name with the request
    and is not checked beyond being an object.
    """
    try:
        message = from_json(text)
    except (ValueError, TypeError) as exc:  # TypeError: a str that is not valid UTF-8
        raise ProtocolError(f"control frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("control frame is not a JSON object")
    kind = message.get("t")
    schema = _SCHEMA.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    for field, (types, required) in schema.items():
        if field not in message:
            if required:
                raise ProtocolError(f"{kind}: missing field {field!r}")
            continue
        value = message[field]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{kind}: field {field!r} has the wrong type")
    if kind == "exec":
        _check_exec(message)
    elif kind == "attach":
        targets_of(message)
    if "resume" in message:
        _check_resume(message["resume"])
    return message


def _check_resume(resume: dict[str, Any]) -> None:
    for node, offsets in resume.items():
        if not isinstance(offsets, dict) or not all(
                isinstance(offsets.get(s, 0), int) and not isinstance(offsets.get(s, 0), bool)
                and offsets.get(s, 0) >= 0 for s in ("stdout", "stderr")):
            raise ProtocolError(f"resume: offsets of {node!r} must be non-negative integers")


def resume_offsets(message: dict[str, Any], node: str) -> tuple[int, int]:
    """(stdout, stderr) offsets from which ``node``'s output is wanted (0, 0 when not resuming).
    """
    offsets = message.get("resume", {}).get(node) or {}
    return int(offsets.get("stdout", 0)), int(offsets.get("stderr", 0))


def fingerprint(message: dict[str, Any]) -> str:
    """Digest of what an ``exec`` asks for: the same request id with another digest is a
    ``conflict``. It covers the command, env, cwd, timeout, stdin flag, the snapshots asked for
    and the full target list (computed where the request enters, so later hops that split
    targets keep it unchanged)."""
    payload = {key: message.get(key) for key in ("argv", "shell", "env", "cwd", "timeout")}
    payload["stdin"] = bool(message.get("stdin"))
    payload["target"] = targets_of(message)
    if payload["env"] == {}:
        payload["env"] = None
    if message.get("snapshot"):
        payload["snapshot"] = message["snapshot"]
    return hashlib.sha256(_CANONICAL.encode(payload).encode()).hexdigest()[:32]


def _check_exec(message: dict[str, Any]) -> None:
    if ("argv" in message) == ("shell" in message):
        raise ProtocolError("exec: exactly one of 'argv' and 'shell' is required")
    argv = message.get("argv")
    if argv is not None and (not argv or not all(isinstance(a, str) for a in argv)):
        raise ProtocolError("exec: 'argv' must be a non-empty list of strings")
    targets_of(message)
    env = message.get("env") or {}
    if not all(isinstance(v, str) for v in env.values()):
        raise ProtocolError("exec: 'env' values must be strings")
    if not all(isinstance(p, str) for p in message.get("path", ())):
        raise ProtocolError("exec: 'path' must be a list of node names")
    if "snapshot" in message:
        _check_snapshot(message["snapshot"])


SNAPSHOT_WHEN: Final = ("before", "after", "both")


def _check_snapshot(spec: dict[str, Any]) -> None:
    """``snapshot: {when, objective, thread, run[, name]}`` (see ``node/snapshots.py``)."""
    if spec.get("when") not in SNAPSHOT_WHEN:
        raise ProtocolError(f"exec: snapshot 'when' must be one of {', '.join(SNAPSHOT_WHEN)}")
    for key in ("objective", "thread", "run"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ProtocolError(f"exec: snapshot {key!r} must be a non-empty string")
    if not isinstance(spec.get("name", ""), str):
        raise ProtocolError("exec: snapshot 'name' must be a string")


def targets_of(message: dict[str, Any]) -> list[str]:
    """The distinct targets of an ``exec`` in order (a single name becomes a one-item list)."""
    target = message["target"]
    names = [target] if isinstance(target, str) else target
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ProtocolError("exec: 'target' must be a node name or a non-empty list of names")
    return list(dict.fromkeys(names))


def error_message(request_id: str | None, node: str | None, hop: str, code: str, message: str,
                  ch: int | None = None) -> dict[str, Any]:
    """Build an ``error`` message; ``node`` None means the whole request failed."""
    msg: dict[str, Any] = {"t": "error", "id": request_id, "node": node, "hop": hop,
                           "code": code, "message": message}
    if ch is not None:
        msg["ch"] = ch
    return msg


def pack_data(stream: int, ch: int, offset: int, *payload: bytes | memoryview) -> bytes:
    """One binary frame: header then the payload, given as one or more consecutive pieces (each
    copied once, into the frame)."""
    return b"".join((HEADER.pack(stream, ch, offset), *payload))


def unpack_data(frame: bytes) -> tuple[int, int, int, memoryview]:
    """Split a binary frame into (stream, ch, offset, payload view); the payload is not copied."""
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(f"data frame of {len(frame)} bytes is shorter than its header")
    stream, ch, offset = HEADER.unpack_from(frame)
    if stream > STDERR:
        raise ProtocolError(f"data frame names unknown stream {stream}")
    return stream, ch, offset, memoryview(frame)[HEADER_SIZE:]


def rechannel(frame: bytes, ch: int) -> bytes:
    """The same data frame on channel ``ch`` (what a forwarding hop sends upstream); the frame
    itself, not a copy, when it already is on ``ch`` (the common case of a chain: every hop's
    first channel is 1)."""
    stream, old, offset = HEADER.unpack_from(frame)
    if old == ch:
        return frame
    return b"".join((HEADER.pack(stream, ch, offset), memoryview(frame)[HEADER_SIZE:]))


T = TypeVar("T")


class ChannelTable(Generic[T]):
    """Channel numbers of one connection, allocated by the side that answers requests.

    Numbers start at 1 and increase; after wrapping past 2**32-1 numbers still in use are skipped,
    so a live channel is never handed out twice.
    """

    __slots__ = ("_items", "_next")

    def __init__(self) -> None:
        self._items: dict[int, T] = {}
        self._next = 1

    def allocate(self, item: T) -> int:
        """Give ``item`` a fresh channel number and return it."""
        ch = self._next
        while ch in self._items:
            ch = ch % _MAX_CH + 1
        self._next = ch % _MAX_CH + 1
        self._items[ch] = item
        return ch

    def get(self, ch: int) -> T | None:
        """The item on ``ch``, or None when the channel is not (or no longer) allocated."""
        return self._items.get(ch)

    def release(self, ch: int) -> T | None:
        """Free ``ch``; returns what it held (None when already free)."""
        return self._items.pop(ch, None)

    def values(self) -> list[T]:
        """Snapshot of every live item."""
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class RequestTracker:
    """Which targets of one request are still open on one connection.

    A target ends with its ``exit`` or its ``error``; a request-wide error (node None) ends all.
    The request is done, and ``done`` must be sent, when no target is open.
    """

    __slots__ = ("_open", "targets")

    def __init__(self, targets: Iterable[str]) -> None:
        self.targets = list(dict.fromkeys(targets))
        self._open = set(self.targets)

    def end(self, node: str) -> bool:
        """Mark ``node`` ended; True when this call ended it (False: unknown or already ended)."""
        if node in self._open:
            self._open.discard(node)
            return True
        return False

    def end_all(self) -> list[str]:
        """End every open target; returns those it ended, in request order."""
        ended = [t for t in self.targets if t in self._open]
        self._open.clear()
        return ended

    def is_open(self, node: str) -> bool:
        """Whether ``node`` has not ended yet."""
        return node in self._open

    @property
    def open(self) -> list[str]:
        """Targets still running or not yet started, in request order."""
        return [t for t in self.targets if t in self._open]

    @property
    def done(self) -> bool:
        """True once every target has ended."""
        return not self._open


class JobStream:
    """Client-side checks for one job: contiguous output offsets and exactly one exit.

    Feed every data frame to :meth:`data` and the ``exit`` message to :meth:`exit`; both raise
    :class:`ProtocolError` on a gap, a duplicate, data after exit, a second exit, or final byte
    counts that disagree with what arrived.
    """

    __slots__ = ("exited", "node", "offsets")

    def __init__(self, node: str) -> None:
        self.node = node
        self.offsets = [0, 0, 0]
        self.exited = False

    def data(self, stream: int, offset: int, size: int) -> None:
        """Account for ``size`` bytes of ``stream`` starting at ``offset``."""
        if self.exited:
            raise ProtocolError(f"{self.node}: output after exit")
        expected = self.offsets[stream]
        if offset != expected:
            what = "gap" if offset > expected else "duplicate"
            raise ProtocolError(
                f"{self.node}: {what} in {STREAM_NAMES[stream]} (offset {offset}, "
                f"expected {expected})")
        self.offsets[stream] = expected + size

    def exit(self, stdout_bytes: int | None, stderr_bytes: int | None) -> None:
        """Accept the job's exit; the final counts, when given, must match what arrived."""
        if self.exited:
            raise ProtocolError(f"{self.node}: second exit")
        self.exited = True
        for stream, final in ((STDOUT, stdout_bytes), (STDERR, stderr_bytes)):
            if final is not None and final != self.offsets[stream]:
                raise ProtocolError(
                    f"{self.node}: {STREAM_NAMES[stream]} ended at {self.offsets[stream]} bytes, "
                    f"exit says {final}")
