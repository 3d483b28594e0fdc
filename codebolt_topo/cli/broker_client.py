"""``codebolt exec`` through a warm broker: the fast path, in the standard library only.

A fresh ``codebolt exec`` spent most of its ~400 ms importing (typer, pydantic, websockets) and
validating the topology, for a request that takes about a millisecond. Like ssh's
ControlMaster, the first ``exec`` of a topology starts a *broker* (``cli/broker.py``) that keeps
the topology validated and its entry connections open; every later ``exec`` of that topology
file connects to the broker's Unix socket, hands it this process's stdin, stdout and stderr
(``SCM_RIGHTS``) with its arguments, and waits for the exit status. The broker writes the output
straight into those descriptors, so nothing is copied through this process.

This module imports nothing of the project beyond the broker's wire format
(``broker_wire.py``) and :mod:`codebolt_topo.rundir`, and of the standard library only what the
interpreter has already loaded or builds in: ``_socket`` and ``_signal`` rather than ``socket``
and ``signal`` (their enums and selectors), no ``json``, ``pathlib``, ``hashlib`` or ``typing``.
Each was milliseconds of a warm exec that takes a few itself (``benchmarks/RESULTS.md``).
:func:`exec_via_broker` answers None whenever the broker cannot serve the command as given (an
option only the full path knows, a template, no broker running yet), and the full path runs
instead; it starts a broker in the background for the next time.

The socket lives in a directory only this user can enter (``$XDG_RUNTIME_DIR/codebolt`` or
``/tmp/codebolt-<uid>``, 0700, refused when owned by anyone else), named after the topology
file's absolute path; the broker accepts only peers of its own uid (``SO_PEERCRED``). It exits
after :data:`PERSIST` idle seconds, when its state file goes away (``destroy``), or when
``codebolt destroy`` tells it to. ``CODEBOLT_BROKER=0`` (or ``exec --no-broker``) never uses one.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's enums cost 3 ms; no stub
import _socket
import os
import sys

from codebolt_topo.cli import broker_wire
from codebolt_topo.rundir import private_path

# The builtin SHA-256 (hashlib would load OpenSSL first: 4 ms), picked by version rather than
# by a failed import, which would search every entry of sys.path first.
if sys.version_info >= (3, 12):
    from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]  # no stub
else:
    from _sha256 import sha256  # type: ignore[import-not-found, unused-ignore]  # no stub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "PERSIST",
    "ExecRequest",
    "broker_dir",
    "broker_socket",
    "exec_via_broker",
    "parse_broker_args",
    "start_broker",
    "status_via_broker",
    "stop_broker",
    "topology_key",
    "warm_broker",
]

PERSIST = 600.0
"""Seconds a broker stays after its last request (``CODEBOLT_BROKER_PERSIST`` overrides)."""
_FLAGS = {"--all": "all_nodes", "--shell": "shell", "--stdin": "stdin"}
_VALUED = {"--from": "from_node", "--timeout": "timeout"}
_TEMPLATES = (".j2", ".jinja")
_TOPOLOGY = (".yaml", ".yml")
_INT = 4  # bytes of a C int: a descriptor in SCM_RIGHTS
#: The caller's environment a terminal's table depends on (cli/output.py's TERMINAL_ENV, which
#: this module cannot import: a test keeps the two the same).
_TERMINAL_ENV = ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TERM", "COLORTERM", "COLUMNS")


class ExecRequest(dict[str, "Any"]):
    """``exec``'s arguments as the broker needs them."""


def topology_key(file: str) -> str:
    """The absolute, normalised path that names a topology's broker (every side uses this)."""
    return os.path.abspath(file)


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
    request["file"] = topology_key(file)
    return request


def broker_dir() -> str:
    """This user's private directory for broker sockets (see :mod:`codebolt_topo.rundir`)."""
    return private_path()


def broker_socket(file: str) -> str:
    """The socket of the broker serving topology ``file`` (:func:`topology_key`) in this
    version's format: short, since a Unix socket's path holds at most 107 bytes."""
    digest = sha256(topology_key(file).encode()).hexdigest()[:24]
    return os.path.join(broker_dir(), f"{digest}-v{broker_wire.VERSION}.sock")


def start_broker(file: str) -> None:
    """Start a broker for ``file`` in the background (it serves the next ``exec``)."""
    from codebolt_topo.rundir import detach

    argv = [sys.executable, "-m", "codebolt_topo.cli.broker", topology_key(file)]
    detach(argv, dict(os.environ), broker_socket(file)[: -len(".sock")] + ".log")


def warm_broker(file: str) -> None:
    """Start ``file``'s broker unless one answers (``apply`` does, as ssh's ControlPersist
    keeps a master: the first ``exec`` and ``status`` after it find the topology warm)."""
    if os.environ.get("CODEBOLT_BROKER", "1") == "0" or not file.endswith(_TOPOLOGY):
        return
    conn = _connect(file)
    if conn is not None:
        conn.close()


def stop_broker(file: str) -> bool:
    """Tell the broker of ``file`` to exit (``destroy`` does); False when none answers."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(5.0)
        conn.connect(broker_socket(file))
        conn.sendall(broker_wire.frame("stop", topology_key(file)))
        conn.recv(64)
    except OSError:
        return False
    finally:
        conn.close()
    return True


def _connect(file: str) -> Any:
    """A connection to ``file``'s broker, or None (and one is started for the next time)."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(broker_socket(file))
    except OSError:
        conn.close()
        try:
            start_broker(file)
        except OSError:
            return None  # no broker this time either; the full path still runs
        return None
    return conn


def _send(conn: Any, request: bytes, fds: tuple[int, ...]) -> bool:
    """Send a request with our descriptors; False when the broker went away meanwhile."""
    passed = b"".join(fd.to_bytes(_INT, sys.byteorder) for fd in fds)
    try:
        conn.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, passed)])
    except OSError:
        return False
    return True


def exec_via_broker(args: list[str]) -> int | None:
    """Run ``codebolt exec ARGS`` through the topology's broker; its exit status, or None when
    the full path must run (and then a broker is started for the next time)."""
    if os.environ.get("CODEBOLT_BROKER", "1") == "0" or "--no-broker" in args:
        return None
    request = parse_broker_args(args)
    if request is None or not os.path.isfile(request["file"]):
        return None
    try:
        frame = broker_wire.frame("exec", *broker_wire.exec_fields(request, os.getcwd()))
    except ValueError:  # past the broker's request limit: the full path sends it itself
        return None
    return _ask(request["file"], frame, (0, 1, 2), "the command ended", cancels=True)


def status_via_broker(args: list[str]) -> int | None:
    """``codebolt status [FILE]`` through the topology's broker, which keeps one heartbeat
    connection per node open between calls (as ``status --watch`` does within one process): a
    cold ``status`` of 500 nodes spent most of its 4 s opening, and closing, 500 WebSocket
    connections. On a terminal the broker draws the table the full path would, at the
    terminal's width and with the colours this environment asks for. None when the full path
    must run (an option, a template, no broker yet: one is started for the next time)."""
    if os.environ.get("CODEBOLT_BROKER", "1") == "0" or len(args) > 1:
        return None
    file = args[0] if args else "topology.yaml"
    if file.startswith("-") or not file.endswith(_TOPOLOGY) or not os.path.isfile(file):
        return None
    environ = [f"{key}={os.environ[key]}" for key in _TERMINAL_ENV if key in os.environ]
    frame = broker_wire.frame("status", topology_key(file), *environ)
    return _ask(file, frame, (1, 2), "status was shown", cancels=False)


def _ask(file: str, frame: bytes, fds: tuple[int, ...], until: str, *, cancels: bool) -> int | None:
    """Send ``frame`` with our descriptors ``fds`` to ``file``'s broker and wait for the exit
    status (None: no broker, or it went away before reading: nothing ran, the full path
    runs). With ``cancels``, Ctrl-C meanwhile becomes a cancel of the request."""
    conn = _connect(file)
    if conn is None:
        return None
    try:
        if not _send(conn, frame, fds):
            return None
        previous = _signal.signal(_signal.SIGINT, lambda *_: _cancel(conn)) if cancels else None
        try:
            code = _read_exit(conn)
        finally:
            if previous is not None:
                _signal.signal(_signal.SIGINT, previous)
    finally:
        conn.close()
    if code is None:
        sys.stderr.write(f"error: the exec broker went away before {until}\n")
        return 255
    return code


def _cancel(conn: Any) -> None:
    try:
        conn.sendall(broker_wire.CANCEL)
    except OSError:
        return  # the broker is gone: its answer, or its absence, ends the wait


def _read_exit(conn: Any) -> int | None:
    """The exit status the broker's answer gives; None when it went away first."""
    buffered = b""
    while b"\n" not in buffered:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        buffered += chunk
    return broker_wire.parse_exit(buffered.split(b"\n", 1)[0])
