"""The exec broker: one warm process per topology file serving ``codebolt exec`` (see
``cli/broker_client.py`` for the side every ``exec`` runs, and why).

``python -m codebolt_topo.cli.broker FILE`` listens on the topology's broker socket and keeps,
between requests, what a fresh ``codebolt exec`` would rebuild each time: the validated topology
and the entry resolved for each target list (both dropped the moment the topology file or the
state file changes), and one connection per entry node (a NodeClient, which reconnects by
itself). Each request brings the caller's stdin, stdout and stderr descriptors; its output is
written there from a thread of its own, so a slow reader pauses its own job (acknowledgements
stop) and nobody else's. Errors read exactly as the full path prints them, exit statuses are the
same. The caller going away (killed, terminal closed) cancels its request, as Ctrl-C does.

A plain ``codebolt status`` is served too (``status_via_broker``): the broker keeps a
StatusCollector, so the heartbeat connections the first one opens serve the next (a cold status
of 500 nodes opened and closed 500 WebSocket connections: 3.4-4.5 s; warm 0.6-1.0 s). On a
terminal the table is drawn for the caller's terminal (its width, and the colours its
environment asks for: ``cli/output.py``'s Terminal), as the full path would draw it.

The broker exits after ``CODEBOLT_BROKER_PERSIST`` idle seconds (600), when it is told to
(``codebolt destroy``), or when the topology's state file is gone. One broker per file: the
second exits at once, holding no lock.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import io
import logging
import os
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from codebolt_topo.cli import broker_wire
from codebolt_topo.cli.broker_client import PERSIST, broker_socket, topology_key
from codebolt_topo.cli.exec_command import ExecStreams, exec_with, plan_exec
from codebolt_topo.errors import TopoError

if TYPE_CHECKING:
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.entry_node import Entry
    from codebolt_topo.engine.statefile import StateBackend
    from codebolt_topo.engine.status import StatusCollector

__all__ = ["Broker", "main"]

log = logging.getLogger("codebolt_topo.broker")
_WATCH = 2.0
"""Seconds between checks that the state file still exists."""


class _ThreadStreams(ExecStreams):
    """A caller's descriptors, written from one thread of this request (order kept)."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO) -> None:
        super().__init__(stdout, stderr)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exec-output")

    async def write(self, stream: str, data: bytes) -> None:
        out = self.stdout if stream == "stdout" else self.stderr
        await asyncio.get_running_loop().run_in_executor(self._writer, _write_all, out, data)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for out in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                out.close()


def _write_all(out: BinaryIO, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):  # the reader left: the job is cancelled anyway
        out.write(data)
        out.flush()


class Broker:
    """Serves ``exec`` requests for one topology file."""

    def __init__(self, file: Path, persist: float) -> None:
        self.file = file
        self.persist = persist
        self.stop = asyncio.Event()
        self._clients: dict[tuple[str, str], NodeClient] = {}
        self._stack = contextlib.AsyncExitStack()
        self._entries: dict[tuple[Any, ...], Entry] = {}
        self._seen: tuple[Any, ...] = ()
        self._busy = 0
        self._last = time.monotonic()
        self._status: StatusCollector | None = None
        self._status_lock = asyncio.Lock()

    # -- the topology, cached until a file changes -----------------------------------------
    def _fingerprint(self) -> tuple[Any, ...]:
        marks: list[Any] = []
        try:
            info = self.file.stat()
        except FileNotFoundError:
            return (None, None)
        marks.append((info.st_mtime_ns, info.st_size, info.st_ino))
        marks.append(self._backend().fingerprint())  # the state, wherever it lives
        return tuple(marks)

    def _backend(self) -> StateBackend:
        """The topology's state (a file, or a database the broker asks for its serial)."""
        if not hasattr(self, "_state_backend"):
            from codebolt_topo.engine.backends import backend_for
            from codebolt_topo.plan.validate import validate_file

            self._state_backend = backend_for(self.file, validate_file(self.file).topology)
        return self._state_backend

    def entry(self, targets: list[str], from_node: str | None, all_nodes: bool) -> Entry:
        """The entry for this target list, resolved again whenever a file changed."""
        from codebolt_topo.engine.entry_node import resolve_entry

        mark = self._fingerprint()
        if mark != self._seen:
            self._entries.clear()
            self._seen = mark
            if hasattr(self, "_state_backend"):
                self._state_backend.close()
                del self._state_backend
        key = (tuple(targets), from_node, all_nodes)
        if key not in self._entries:
            self._entries[key] = resolve_entry(
                self.file, targets or None, from_node=from_node, all_nodes=all_nodes
            )
        return self._entries[key]

    async def client(self, entry: Entry) -> NodeClient:
        """The connection to ``entry``'s node, opened once (it reconnects by itself)."""
        from codebolt_topo.client import NodeClient

        key = (entry.url, entry.token)
        if key not in self._clients:
            connecting = NodeClient.connect(entry.url, entry.token, name=entry.node, ca=entry.ca)
            self._clients[key] = await self._stack.enter_async_context(connecting)
        return self._clients[key]

    # -- requests ----------------------------------------------------------------------------
    async def serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        watcher = asyncio.ensure_future(self._watch())
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self.stop.is_set():
                accepted = asyncio.ensure_future(loop.sock_accept(listener))
                stopped = asyncio.ensure_future(self.stop.wait())
                done, _ = await asyncio.wait(
                    {accepted, stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                stopped.cancel()
                if accepted not in done:
                    accepted.cancel()
                    break
                conn, _ = accepted.result()
                task = asyncio.ensure_future(self._handle(conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            watcher.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._status is not None:
                await self._status.close()
            await self._stack.aclose()

    async def _watch(self) -> None:
        """Stop when idle past ``persist``, or when the topology is gone: its file removed, its
        state file removed or holding no node (``destroy`` through the Python API)."""
        seen: tuple[Any, ...] = ()
        while True:
            await asyncio.sleep(_WATCH)
            idle = not self._busy and time.monotonic() - self._last > self.persist
            try:
                mark = self._fingerprint()
            except TopoError:  # the file is being edited: its next request will say so
                mark = seen
            gone = bool(mark) and (mark[0] is None or mark[1] is None)
            if not gone and mark != seen:
                seen, gone = mark, not self._has_nodes()
            if idle or gone:
                log.info("broker for %s stopping (%s)", self.file, "idle" if idle else "gone")
                self.stop.set()
                return

    def _has_nodes(self) -> bool:
        try:
            return bool(self._backend().load(sealed_ok=True).nodes)
        except TopoError:
            return False

    async def _handle(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        self._busy += 1
        try:
            if not _same_user(conn):
                return
            kind, words, fds = await _receive(conn)
            loop = asyncio.get_running_loop()
            if kind == "stop":
                _close_all(fds)
                self.stop.set()
                await loop.sock_sendall(conn, broker_wire.STOPPING)
                return
            if kind == "status":
                code = await self._show_status(words, fds)
            elif kind == "exec":
                code = await self._exec(conn, words, fds)
            else:
                _close_all(fds)
                raise ValueError(f"a request of unknown kind {kind!r}")
            await loop.sock_sendall(conn, broker_wire.exit_line(code))
        except EOFError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("request failed: %s", exc)
        finally:
            self._busy -= 1
            self._last = time.monotonic()
            conn.close()

    async def _show_status(self, words: list[str], fds: list[int]) -> int:
        """``codebolt status`` written into the caller's stdout and stderr, with this broker's
        heartbeat connections (opened by the first status, kept until the broker exits): the
        plain table when its stdout is no terminal, else the full path's table drawn for the
        caller's terminal (its width, the colours the caller's environment asks for)."""
        if len(fds) != 2 or words[:1] != [str(self.file)]:
            _close_all(fds)
            raise ValueError(f"a status request must name {self.file} and carry stdout, stderr")
        from codebolt_topo.cli.status_command import show_once

        environ = dict(word.partition("=")[::2] for word in words[1:])
        out, errors = (_text_for(fd, environ) for fd in fds)
        code = 0
        async with self._status_lock:  # one collection at a time over the shared connections
            if self._status is None:
                from codebolt_topo.engine.status import StatusCollector

                self._status = StatusCollector(self.file)
            try:
                await show_once(self._status, self.file, out, errors)
            except TopoError as error:
                for line in str(error).splitlines() or [""]:
                    errors.write(f"error: {line}\n")
                code = error.exit_code
            except Exception as error:  # the caller still gets an answer and its descriptors
                log.exception("status failed")
                errors.write(f"internal error: {type(error).__name__}: {error}\n")
                code = 70
        written = (fds[0], out.getvalue()), (fds[1], errors.getvalue())
        await asyncio.get_running_loop().run_in_executor(None, _write_and_close, written)
        return code

    async def _exec(self, conn: socket.socket, words: list[str], fds: list[int]) -> int:
        if len(fds) != 3:
            _close_all(fds)
            raise ValueError("an exec request must carry stdin, stdout and stderr")
        stdin_fd = fds[0]
        streams = _ThreadStreams(os.fdopen(fds[1], "wb"), os.fdopen(fds[2], "wb"))
        try:  # from here on, whatever happens, the caller's descriptors are closed below
            request = broker_wire.exec_request(words)
            if request["file"] != str(self.file):
                raise ValueError(f"a request for {request['file']}, not {self.file}")
            return await self._run(conn, request, stdin_fd, streams)
        finally:
            os.close(stdin_fd)
            await asyncio.get_running_loop().run_in_executor(None, streams.close)

    async def _run(
        self, conn: socket.socket, request: dict[str, Any], stdin_fd: int, streams: _ThreadStreams
    ) -> int:
        try:
            _, targets, command = plan_exec(
                list(request["positionals"]), names_targets=not request["all_nodes"]
            )
            entry = self.entry(targets, request["from_node"], request["all_nodes"])
            data = await _read_all(stdin_fd) if request["stdin"] else None
            client = await self.client(entry)
        except TopoError as error:
            for line in str(error).splitlines() or [""]:
                await streams.say(f"error: {line}")
            return error.exit_code
        cancel = asyncio.Event()
        caller = asyncio.ensure_future(_cancel_requests(conn, cancel))
        try:
            return await exec_with(
                client,
                entry.targets,
                command,
                shell=request["shell"],
                timeout=request["timeout"],
                stdin=data,
                streams=streams,
                cancel=cancel,
            )
        finally:
            caller.cancel()


def _write_and_close(written: tuple[tuple[int, str], ...]) -> None:
    """Write each text to its descriptor (blocking, off the loop: a slow reader holds only
    this thread) and close it."""
    for fd, text in written:
        with os.fdopen(fd, "wb") as stream, contextlib.suppress(OSError):
            stream.write(text.encode())


def _text_for(fd: int, environ: dict[str, str]) -> io.StringIO:
    """Where to gather what goes to the caller's ``fd``: plain text, or text for its terminal."""
    from codebolt_topo.cli.output import Terminal, TerminalText

    if not os.isatty(fd):
        return io.StringIO()
    return TerminalText(Terminal.of(environ, os.get_terminal_size(fd).columns))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this user (``SO_PEERCRED``: pid, uid, gid)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


async def _receive(conn: socket.socket) -> tuple[str, list[str], list[int]]:
    """A request's kind and words (``broker_wire``), and the descriptors that came with it."""
    loop = asyncio.get_running_loop()
    data, fds = b"", array.array("i")
    length: int | None = None
    while length is None or len(data) < length:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _settle, ready)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())
        # Never past the frame: a Ctrl-C's cancel may follow it at once.
        wanted = (broker_wire.HEADER if length is None else length) - len(data)
        try:
            chunk, ancdata, _, _ = conn.recvmsg(wanted, socket.CMSG_SPACE(3 * fds.itemsize))
        except BlockingIOError:
            continue
        for level, message_type, payload in ancdata:
            if level == socket.SOL_SOCKET and message_type == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        data += chunk
        try:
            length = broker_wire.frame_length(data)
            if not chunk:
                if not data:  # a look, not a request (``warm_broker`` checks we listen)
                    raise EOFError
                raise ValueError("a request ended early")
        except (ValueError, EOFError):
            _close_all(list(fds))
            raise
    try:
        kind, words = broker_wire.unframe(data)
    except ValueError:
        _close_all(list(fds))
        raise
    return kind, words, list(fds)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _cancel_requests(conn: socket.socket, cancel: asyncio.Event) -> None:
    """Ctrl-C on the caller's side arrives as a line; its going away cancels too."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.sock_recv(conn, 4096)
        except OSError:
            chunk = b""
        if not chunk or broker_wire.CANCEL.strip() in chunk:
            cancel.set()
            if not chunk:
                return


async def _read_all(fd: int) -> bytes:
    def read() -> bytes:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)

    return await asyncio.get_running_loop().run_in_executor(None, read)


def _bind(path: Path) -> socket.socket | None:
    """Listen at ``path``, unless another broker already does (then None)."""
    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None  # the lock stays with the broker that holds it, for its whole life
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a broker that died left it: nobody answers there
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    return listener


def main(argv: list[str] | None = None) -> int:
    """``python -m codebolt_topo.cli.broker FILE``: serve until idle, told, or destroyed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m codebolt_topo.cli.broker FILE", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    file = Path(topology_key(args[0]))
    path = Path(broker_socket(str(file)))
    listener = _bind(path)
    if listener is None:
        return 0
    persist = float(os.environ.get("CODEBOLT_BROKER_PERSIST", PERSIST))
    log.info("broker for %s listening at %s (pid %d)", file, path, os.getpid())
    try:
        asyncio.run(Broker(file, persist).serve(listener))
    finally:
        listener.close()
        for leftover in (path, path.with_suffix(".lock"), path.with_suffix(".log")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()  # a clean exit leaves nothing behind (its log included)
    return 0


if __name__ == "__main__":
    sys.exit(main())
