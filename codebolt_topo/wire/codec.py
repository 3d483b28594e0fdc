"""Control frames, sans I/O: one JSON object each, encoded fast and checked on decode.

Nothing here touches a socket or an event loop. The websockets adapters (``node/server.py``,
``wire/link.py``, ``codebolt_topo.client``) feed frames in and send what comes out, so every rule
of ``docs/protocol.md`` can be tested in microseconds. Messages are plain ``dict`` objects whose
shape :func:`decode` has checked; :mod:`codebolt_topo.wire.messages` types them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any, Final

from pydantic_core import from_json, to_json

from codebolt_topo.errors import ProtocolError

__all__ = [
    "MAX_ID_LENGTH",
    "SNAPSHOT_WHEN",
    "SYNC_DIRECTIONS",
    "decode",
    "encode",
    "error_message",
    "fingerprint",
    "request_id_of",
    "resume_offsets",
    "shown",
    "targets_of",
]

_STR = (str,)
_INT = (int,)
_OPT_STR = (str, type(None))
_LIST = (list,)
_DICT = (dict,)
_ANY: tuple[type, ...] = (object,)

# type -> {field: (accepted types, required)}. Unknown fields are ignored so messages can grow.
_SCHEMA: Final[dict[str, dict[str, tuple[tuple[type, ...], bool]]]] = {
    "exec": {
        "id": (_STR, True),
        "target": ((str, list), True),
        "argv": (_LIST, False),
        "shell": (_STR, False),
        "env": (_DICT, False),
        "cwd": (_OPT_STR, False),
        "timeout": ((int, float, type(None)), False),
        "stdin": ((bool,), False),
        "hops": (_INT, False),
        "path": (_LIST, False),
        "origin": (_STR, False),
        "digest": (_STR, False),
        "resume": (_DICT, False),
        "snapshot": (_DICT, False),
        "issued": (_DICT, False),
    },
    "attach": {
        "id": (_STR, True),
        "target": ((str, list), True),
        "hops": (_INT, False),
        "path": (_LIST, False),
        "origin": (_STR, False),
        "resume": (_DICT, False),
    },
    "ack": {"ch": (_INT, True), "stdout": (_INT, True), "stderr": (_INT, True)},
    "detach": {"id": (_STR, True)},
    "cancel": {"id": (_STR, True)},
    "signal": {"ch": (_INT, True), "signal": (_STR, True)},
    "eof": {"ch": (_INT, True)},
    "notify": {
        "kind": (_STR, True),
        "data": (_ANY, False),
        "ch": (_INT, False),
        "id": (_STR, False),
        "node": (_OPT_STR, False),
    },
    "configure": {"config": (_DICT, True), "id": (_STR, False)},
    "info": {"id": (_STR, False), "detail": ((bool,), False)},
    "presence": {"id": (_STR, False), "node": (_STR, True), "timeout": ((int, float), False)},
    "sync": {"id": (_STR, True), "peer": (_STR, True), "direction": (_STR, True)},
    "started": {
        "id": (_STR, True),
        "ch": (_INT, True),
        "node": (_STR, True),
        "pid": ((int, type(None)), False),
        "path": (_LIST, False),
        "window": (_INT, False),
    },
    "exit": {
        "ch": (_INT, True),
        "node": (_STR, True),
        "code": ((int, type(None)), False),
        "signal": (_OPT_STR, False),
        "duration": ((int, float), False),
        "timed_out": ((bool,), False),
        "cancelled": ((bool,), False),
        "stdout_bytes": (_INT, False),
        "stderr_bytes": (_INT, False),
        "id": (_STR, False),
        "done": ((bool,), False),
        "snapshots": (_LIST, False),
    },
    "error": {
        "id": (_OPT_STR, False),
        "node": (_OPT_STR, False),
        "hop": (_OPT_STR, False),
        "code": (_STR, True),
        "message": (_STR, True),
        "ch": (_INT, False),
        "done": ((bool,), False),
    },
    "done": {"id": (_STR, True)},
    "configured": {"generation": (_INT, True), "id": (_STR, False)},
    "synced": {
        "id": (_STR, True),
        "node": (_STR, True),
        "peer": (_STR, True),
        "direction": (_STR, True),
        "bytes": (_INT, True),
        "seconds": ((int, float), True),
        "report": ((dict, type(None)), False),
    },
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
        raise ProtocolError(f"unknown message type {shown(kind)}")
    for field, (types, required) in schema.items():
        if field not in message:
            if required:
                raise ProtocolError(f"{kind}: missing field {field!r}")
            continue
        value = message[field]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{kind}: field {field!r} has the wrong type")
    if kind == "exec":
        _check_ids(message)
        _check_exec(message)
    elif kind == "attach":
        _check_ids(message)
        targets_of(message)
    elif kind == "sync":
        _check_sync(message)
    if "resume" in message:
        _check_resume(message["resume"])
    return message


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: for what a peer sent, quoted in an answer or
    in node.log (a frame may be 4 MiB; its error need not be)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def request_id_of(text: str | bytes) -> str | None:
    """The ``id`` of an ``exec`` or ``attach`` frame that :func:`decode` refused, when it can be
    read: the ``bad-request`` then carries it and ``done``, so the sender's request ends instead
    of waiting forever for an answer it cannot recognise. None for anything else."""
    try:
        message = from_json(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(message, dict) or message.get("t") not in ("exec", "attach"):
        return None
    request_id = message.get("id")
    if isinstance(request_id, str) and 0 < len(request_id) <= MAX_ID_LENGTH:
        return request_id
    return None


def _check_resume(resume: dict[str, Any]) -> None:
    for node, offsets in resume.items():
        if not isinstance(offsets, dict) or not all(
            isinstance(offsets.get(s, 0), int)
            and not isinstance(offsets.get(s, 0), bool)
            and offsets.get(s, 0) >= 0
            for s in ("stdout", "stderr")
        ):
            raise ProtocolError(f"resume: offsets of {shown(node)} must be non-negative integers")


def resume_offsets(message: dict[str, Any], node: str) -> tuple[int, int]:
    """(stdout, stderr) offsets from which ``node``'s output is wanted (0, 0 when not resuming)."""
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
    """What :func:`decode` checks beyond field types: everything that would otherwise fail
    only in ``Popen`` (a NUL byte, an ``=`` in an env name) or in the event loop (a NaN
    timeout), so a malformed request is answered ``bad-request`` before it takes anything."""
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
    _check_spawnable(message, argv or (), env)
    timeout = message.get("timeout")
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        raise ProtocolError("exec: 'timeout' must be a finite number of seconds, 0 or more")
    if "snapshot" in message:
        _check_snapshot(message["snapshot"])
    if "issued" in message:
        _check_issued(message["issued"])


def _check_spawnable(message: dict[str, Any], argv: Iterable[str], env: dict[str, str]) -> None:
    """The strings that reach ``execve``/``chdir`` hold no NUL, and env names are names."""
    if any("\0" in arg for arg in argv) or "\0" in message.get("shell", ""):
        raise ProtocolError("exec: the command must not contain NUL bytes")
    if "\0" in (message.get("cwd") or ""):
        raise ProtocolError("exec: 'cwd' must not contain NUL bytes")
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise ProtocolError("exec: 'env' names must be non-empty, without '=' or NUL bytes")
        if "\0" in value:
            raise ProtocolError("exec: 'env' values must not contain NUL bytes")


SNAPSHOT_WHEN: Final = ("before", "after", "both")


def _check_snapshot(spec: dict[str, Any]) -> None:
    """``snapshot: {when, objective, thread, run[, name]}`` (see ``node/jobs/snapshots.py``)."""
    if spec.get("when") not in SNAPSHOT_WHEN:
        raise ProtocolError(f"exec: snapshot 'when' must be one of {', '.join(SNAPSHOT_WHEN)}")
    for key in ("objective", "thread", "run"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ProtocolError(f"exec: snapshot {key!r} must be a non-empty string")
    if not isinstance(spec.get("name", ""), str):
        raise ProtocolError("exec: snapshot 'name' must be a string")
    if any("\0" in spec.get(key, "") for key in ("objective", "thread", "run", "name")):
        raise ProtocolError("exec: snapshot fields must not contain NUL bytes")


def targets_of(message: dict[str, Any]) -> list[str]:
    """The distinct targets of an ``exec`` in order (a single name becomes a one-item list)."""
    target = message["target"]
    names = [target] if isinstance(target, str) else target
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ProtocolError("exec: 'target' must be a node name or a non-empty list of names")
    return list(dict.fromkeys(names))


def error_message(
    request_id: str | None,
    node: str | None,
    hop: str,
    code: str,
    message: str,
    ch: int | None = None,
) -> dict[str, Any]:
    """Build an ``error`` message; ``node`` None means the whole request failed."""
    msg: dict[str, Any] = {
        "t": "error",
        "id": request_id,
        "node": node,
        "hop": hop,
        "code": code,
        "message": message,
    }
    if ch is not None:
        msg["ch"] = ch
    return msg


MAX_ID_LENGTH: Final = 512
"""Longest request id (``id``, ``origin``): ids are kept (job table, seen requests) and echoed in
every answer, so their size is bounded like everything else a peer makes a node hold."""


def _check_issued(issued: dict[str, Any]) -> None:
    epoch, at = issued.get("epoch"), issued.get("at")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise ProtocolError("exec: 'issued' must carry the node's clock 'epoch' (a string)")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        raise ProtocolError("exec: 'issued' must carry 'at', seconds on the node's clock")


SYNC_DIRECTIONS: Final = ("push", "pull")


def _check_sync(message: dict[str, Any]) -> None:
    """``sync``: a known direction, a bounded id, and a peer named without NUL bytes."""
    if message["direction"] not in SYNC_DIRECTIONS:
        raise ProtocolError("sync: 'direction' must be push or pull")
    if not message["peer"] or "\0" in message["peer"]:
        raise ProtocolError("sync: 'peer' must be a node name")
    _check_ids(message)


def _check_ids(message: dict[str, Any]) -> None:
    for key in ("id", "origin"):
        if len(message.get(key) or "") > MAX_ID_LENGTH:
            raise ProtocolError(f"{message['t']}: {key!r} is longer than {MAX_ID_LENGTH}")
