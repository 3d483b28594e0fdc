"""``codebolt exec`` through a warm broker: the fast path, in the standard library only.

A fresh ``codebolt exec`` spent most of its ~400 ms importing (typer, pydantic, websockets) and
validating the topology, for a request that takes about a millisecond. Like ssh's
ControlMaster, the first ``exec`` of a topology starts a *broker* (``cli/broker.py``) that keeps
the topology validated and its entry connections open; every later ``exec`` of that topology
file connects to the broker's Unix socket, hands it this process's stdin, stdout and stderr
(``SCM_RIGHTS``) with its arguments, and waits for the exit status. The broker writes the output
straight into those descriptors, so nothing is copied through this process.

This module imports nothing of the project beyond itself: it runs before typer, pydantic or
asyncio would be loaded. :func:`exec_via_broker` answers None whenever the broker cannot serve
the command as given (an option only the full path knows, a template, no broker running yet),
and the full path runs instead; it starts a broker in the background for the next time.

The socket lives in a directory only this user can enter (``$XDG_RUNTIME_DIR/codebolt`` or
``/tmp/codebolt-<uid>``, 0700, refused when owned by anyone else), named after the topology
file's absolute path; the broker accepts only peers of its own uid (``SO_PEERCRED``). It exits
after :data:`PERSIST` idle seconds, when its state file goes away (``destroy``), or when
``codebolt destroy`` tells it to. ``CODEBOLT_BROKER=0`` (or ``exec --no-broker``) never uses one.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from codebolt_topo.rundir import detach, private_dir

__all__ = [
    "PERSIST",
    "ExecRequest",
    "broker_socket",
    "exec_via_broker",
    "parse_broker_args",
    "start_broker",
    "status_via_broker",
    "stop_broker",
]

PERSIST = 600.0
"""Seconds a broker stays after its last request (``CODEBOLT_BROKER_PERSIST`` overrides)."""
_FLAGS = {"--all": "all_nodes", "--shell": "shell", "--stdin": "stdin"}
_VALUED = {"--from": "from_node", "--timeout": "timeout"}
_TEMPLATES = (".j2", ".jinja")
_TOPOLOGY = (".yaml", ".yml")


class ExecRequest(dict[str, Any]):
    """``exec``'s arguments as the broker needs them (a JSON object on the wire)."""


def parse_broker_args(args: list[str]) -> ExecRequest | None:
    """``exec``'s arguments, when the broker can serve them exactly as the full path would:
    only ``--from``, ``--timeout``, ``--all``, ``--shell``, ``--stdin`` before ``--``, no
    template file. None otherwise (the full path then parses, and explains any mistake)."""
    request = ExecRequest(
        positionals=[], all_nodes=False, shell=False, stdin=False, from_node=None, timeout=None
    )
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            request["positionals"].append("--")
            request["positionals"].extend(tokens)
            break
        if token.startswith("-"):
            name, equals, value = token.partition("=")
            if name in _FLAGS and not equals:
                request[_FLAGS[name]] = True
            elif name in _VALUED:
                value = value if equals else next(tokens, "")
                if not value:
                    return None
                request[_VALUED[name]] = value
            else:
                return None  # --requires, --snapshot, --help, --var...: the full path's
            continue
        request["positionals"].append(token)
    first = request["positionals"][0] if request["positionals"] else ""
    if first.endswith(_TEMPLATES):
        return None
    if request["timeout"] is not None:
        try:
            request["timeout"] = float(request["timeout"])
        except ValueError:
            return None
    file = first if first.endswith(_TOPOLOGY) else "topology.yaml"
    request["file"] = str(Path(file).absolute())
    return request


def broker_dir() -> Path:
    """This user's private directory for broker sockets (see :mod:`codebolt_topo.rundir`)."""
    return private_dir()


def broker_socket(file: str) -> Path:
    """The socket of the broker serving topology ``file`` (an absolute path): short, since a
    Unix socket's path holds at most 107 bytes."""
    digest = hashlib.sha256(file.encode()).hexdigest()[:24]
    return broker_dir() / f"{digest}.sock"


def start_broker(file: str) -> None:
    """Start a broker for ``file`` in the background (it serves the next ``exec``)."""
    argv = [sys.executable, "-m", "codebolt_topo.cli.broker", file]
    detach(argv, dict(os.environ), broker_socket(file).with_suffix(".log"))


def stop_broker(file: str) -> bool:
    """Tell the broker of ``file`` to exit (``destroy`` does); False when none answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5.0)
            conn.connect(str(broker_socket(file)))
            conn.sendall(json.dumps({"stop": True}).encode() + b"\n")
            conn.recv(64)
    except OSError:
        return False
    return True


def exec_via_broker(args: list[str]) -> int | None:
    """Run ``codebolt exec ARGS`` through the topology's broker; its exit status, or None when
    the full path must run (and then a broker is started for the next time)."""
    if os.environ.get("CODEBOLT_BROKER", "1") == "0" or "--no-broker" in args:
        return None
    request = parse_broker_args(args)
    if request is None or not Path(request["file"]).is_file():
        return None
    try:
        path = broker_socket(request["file"])
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
    except OSError:
        _start_quietly(request["file"])
        return None
    with conn:
        return _run(conn, request)


def status_via_broker(args: list[str]) -> int | None:
    """``codebolt status [FILE]`` through the topology's broker, which keeps one heartbeat
    connection per node open between calls (as ``status --watch`` does within one process): a
    cold ``status`` of 500 nodes spent most of its 4 s opening, and closing, 500 WebSocket
    connections. Off a terminal only (scripts, pipes, CI: the plain table); None when the full
    path must run (a terminal, an option, a template, no broker yet: one is started for the
    next time)."""
    if os.environ.get("CODEBOLT_BROKER", "1") == "0" or len(args) > 1 or os.isatty(1):
        return None  # a terminal gets rich's table, sized and coloured there: the full path
    file = args[0] if args else "topology.yaml"
    if file.startswith("-") or not file.endswith(_TOPOLOGY) or not Path(file).is_file():
        return None
    absolute = str(Path(file).absolute())
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(broker_socket(absolute)))
    except OSError:
        _start_quietly(absolute)
        return None
    with conn:
        payload = json.dumps({"status": {"file": absolute}}).encode() + b"\n"
        try:
            conn.sendmsg(
                [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [1, 2]))]
            )
        except OSError:
            return None  # the broker went away between connect and send
        reply = _read_reply(conn)
    if reply is None:
        sys.stderr.write("error: the exec broker went away before status was shown\n")
        return 255
    return int(reply.get("exit", 255))


def _start_quietly(file: str) -> None:
    with contextlib.suppress(OSError):  # no broker this time either; the full path still runs
        start_broker(file)


def _run(conn: socket.socket, request: ExecRequest) -> int | None:
    """Hand the broker our descriptors and the request; relay Ctrl-C as a cancel."""
    payload = json.dumps({"exec": request, "cwd": os.getcwd()}).encode() + b"\n"
    fds = array.array("i", [0, 1, 2])
    try:
        conn.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    except OSError:
        return None  # the broker went away between connect and send: nothing ran
    previous = signal.signal(signal.SIGINT, lambda *_: _cancel(conn))
    try:
        reply = _read_reply(conn)
    finally:
        signal.signal(signal.SIGINT, previous)
    if reply is None:
        sys.stderr.write("error: the exec broker went away before the command ended\n")
        return 255
    return int(reply.get("exit", 255))


def _cancel(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(b'{"cancel": true}\n')


def _read_reply(conn: socket.socket) -> dict[str, Any] | None:
    buffered = b""
    while b"\n" not in buffered:
        try:
            chunk = conn.recv(4096)
        except InterruptedError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buffered += chunk
    reply: dict[str, Any] = json.loads(buffered.split(b"\n", 1)[0])
    return reply
