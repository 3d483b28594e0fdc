"""Running one job on this node: a subprocess whose output goes to a :class:`Sink`.

Contract of :class:`LocalJob`: call :meth:`LocalJob.start` once (it spawns, or raises
:class:`~codebolt_topo.errors.ExecError` with code ``not-found`` or ``spawn-failed``), then await
:meth:`LocalJob.run`, which pumps stdout/stderr/notifications into the sink and returns the
``exit`` message (without ``ch``) *after* every output chunk reached the sink. Control methods
(:meth:`cancel`, :meth:`signal`, :meth:`write_stdin`, :meth:`close_stdin`) may be called at any
time after ``start``.

Each job runs in its own session (``start_new_session``); cancel and timeout reach every process
the job started, whatever its process group (:mod:`~codebolt_topo.node.jobs.reaper`): SIGTERM, then
SIGKILL after :data:`KILL_GRACE`, and nothing the job started outlives its exit. Output is read
from enlarged pipes in chunks of at most 256 KiB (one frame's payload), kept as read (no copy),
and each chunk is handed to the sink, awaited, before the next read: a sink whose window is full
stalls the pipe, and so the child, not our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shlex
import signal as signals
import time
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from codebolt_topo.errors import ExecError, ProtocolError
from codebolt_topo.node.jobs.reaper import JobReaper, job_reaper
from codebolt_topo.node.jobs.snapshots import label, take_snapshot, wanted
from codebolt_topo.node.jobs.spawn import JobProcess, spawn
from codebolt_topo.wire.frames import CHUNK_SIZE, STDERR, STDOUT

__all__ = ["KILL_GRACE", "LINGER_GRACE", "LocalJob", "Sink", "parse_signal"]

KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when a job is cancelled or times out."""
LINGER_GRACE = 1.0
"""Seconds the pipes may stay open after the main process exited before the group is killed."""
PIPE_SIZE = 1024 * 1024
"""Capacity asked of the kernel for each output pipe (Linux ``F_SETPIPE_SZ``)."""
_NOTIFY_LINE_LIMIT = 1024 * 1024
_KILLS: set[asyncio.Future[None]] = set()
log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where a job's output goes (the held job's replay buffers)."""

    @property
    def paused(self) -> bool:
        """True while an output call waits for the window: a slow reader, not a stuck pipe."""

    async def output(self, stream: int, data: bytes) -> None:
        """Take one chunk; returns once the next chunk may be read (the window has room)."""

    def notify(self, kind: str, data: Any) -> None:
        """A notification line from the job."""

    def release(self) -> None:
        """The job is being killed: stop holding the pipes back, so they drain and close."""


def _output_pipe() -> tuple[int, int]:
    """A pipe for the child's stdout or stderr: (our non-blocking read end, its write end).

    Enlarged to :data:`PIPE_SIZE` where the kernel allows, so the child writes on while a frame
    is being sent and each read takes a whole frame's worth.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or over the user's quota
        fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    os.set_blocking(read_fd, False)
    return read_fd, write_fd


def _owning(coro: Coroutine[Any, Any, None], fd: int) -> asyncio.Future[None]:
    """Run ``coro`` as a task that closes ``fd`` when it ends, however it ends (even when it is
    cancelled before it started)."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda _: os.close(fd))
    return task


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_reader(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def parse_signal(name: str) -> signals.Signals:
    """``"SIGINT"``, ``"INT"`` or ``"2"`` as a signal; ValueError when unknown."""
    try:
        if name.isdigit():
            return signals.Signals(int(name))
        upper = name.upper()
        return signals.Signals[upper if upper.startswith("SIG") else "SIG" + upper]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


class LocalJob:
    """One ``exec`` target that is this node. Not reusable."""

    def __init__(
        self,
        *,
        node: str,
        request: dict[str, Any],
        base_env: Mapping[str, str],
        workspace: Path,
        sink: Sink,
    ) -> None:
        self.node = node
        self.request_id: str = request["id"]
        self.owner: str | None = request.get("owner")  # see node/security/principals.py
        self._request = request
        self._job_env = {**base_env, **request.get("env", {})}
        self._workspace = workspace
        self._sink = sink
        self._proc: JobProcess | None = None
        self._notify: asyncio.StreamReader | None = None
        self._stdin_queue: asyncio.Queue[bytes | None] | None = None
        self._stdin_offset = 0
        self._stdin_unread = False
        """Nothing reads the child's stdin any more (it closed it, or the job ended)."""
        self._started = 0.0
        self._killer: asyncio.Task[None] | None = None
        self._eof_task: asyncio.Future[None] | None = None
        self._notify_transport: asyncio.BaseTransport | None = None
        self._outputs = (-1, -1)
        self.cancelled = False
        self.timed_out = False
        self._snapshot_spec: dict[str, Any] | None = request.get("snapshot")
        self._snapshots: list[dict[str, Any]] = []

    @property
    def command(self) -> str:
        """The command as a shell would read it (``shell`` as given, ``argv`` quoted)."""
        req = self._request
        return str(req["shell"]) if "shell" in req else shlex.join(req["argv"])

    @property
    def pid(self) -> int:
        """Process id (and process group id) of the job; valid after :meth:`start`."""
        assert self._proc is not None
        return self._proc.pid

    async def start(self) -> int:
        """Spawn the process; returns its pid. Raises ExecError when it cannot be spawned.

        Whatever went wrong (a NUL byte in argv or env makes ``Popen`` raise ValueError, a full
        descriptor table OSError), every descriptor opened here is closed before the error
        leaves: a request that cannot run takes nothing with it."""
        req = self._request
        argv: list[str] = req["argv"] if "argv" in req else ["/bin/sh", "-c", req["shell"]]
        cwd = self._workspace / req["cwd"] if req.get("cwd") else self._workspace
        if not cwd.is_dir():
            raise ExecError(
                f"node {self.node!r}: working directory {str(cwd)!r} does not exist",
                node=self.node,
                hop=self.node,
                code="spawn-failed",
            )
        if wanted(self._snapshot_spec, "before"):  # before any descriptor is opened
            await self._snapshot("before")
        ours: list[int] = []  # read ends, the job's once it runs
        theirs: list[int] = []  # write ends, closed here once the child has its copies
        wants_stdin = bool(req.get("stdin"))
        try:
            for make in (os.pipe, _output_pipe, _output_pipe):
                read_end, write_end = make()
                ours.append(read_end)
                theirs.append(write_end)
            read_fd, out_r, err_r = ours
            write_fd, out_w, err_w = theirs
            env = {
                **self._job_env,
                "CODEBOLT_NOTIFY_FD": str(write_fd),
                "CODEBOLT_REQUEST_ID": self.request_id,
            }
            self._proc = await spawn(
                argv,
                cwd=cwd,
                env=env,
                stdout=out_w,
                stderr=err_w,
                with_stdin=wants_stdin,
                pass_fds=(write_fd,),
            )
        except BaseException as exc:
            for fd in ours:
                os.close(fd)
            if isinstance(exc, OSError | ValueError | TypeError):
                raise self._spawn_error(argv[0], exc) from None
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self._outputs = (out_r, err_r)
        self._started = time.monotonic()
        try:
            self._notify, self._notify_transport = await self._open_notify(read_fd)
        except BaseException:  # the process runs, but nobody will ever read it: end it all
            for fd in self._outputs:
                os.close(fd)
            await job_reaper().kill(self._proc.pid)
            job_reaper().ended(self._proc.pid)
            raise
        if wants_stdin:
            self._stdin_queue = asyncio.Queue(maxsize=16)
        return self._proc.pid

    def _spawn_error(self, command: str, exc: Exception) -> ExecError:
        """The error a failed spawn is answered with: ``not-found``, ``spawn-failed`` (the
        system refused: no such directory, out of descriptors) or ``bad-request`` (what the
        request holds cannot be passed to a process)."""
        if isinstance(exc, FileNotFoundError):
            message, code = f"command not found: {command!r}", "not-found"
        elif isinstance(exc, OSError):
            message, code = f"cannot run {command!r}: {exc.strerror or exc}", "spawn-failed"
        else:
            message, code = f"cannot run {command!r}: {exc}", "bad-request"
        return ExecError(f"node {self.node!r}: {message}", node=self.node, hop=self.node, code=code)

    @staticmethod
    async def _open_notify(read_fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_NOTIFY_LINE_LIMIT)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except BaseException:
            pipe.close()
            raise
        return reader, transport

    async def run(self) -> dict[str, Any]:
        """Stream the job until it ends; returns the ``exit`` message (not yet sent)."""
        proc = self._proc
        assert proc is not None
        assert self._notify is not None
        counts = [0, 0, 0]
        reaper = job_reaper()  # which knows the job since the spawn
        readers = [
            _owning(self._pump(self._outputs[0], STDOUT, counts), self._outputs[0]),
            _owning(self._pump(self._outputs[1], STDERR, counts), self._outputs[1]),
            asyncio.ensure_future(self._pump_notify(self._notify)),
        ]
        writer = asyncio.ensure_future(self._write_stdin()) if self._stdin_queue else None
        try:
            timeout = self._request.get("timeout") or None
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout)
            except TimeoutError:
                self.timed_out = True
                self._kill_soon()
                await proc.wait()
            pending = await self._linger(readers)
            if pending:  # something of the job still holds the pipes open
                await reaper.kill(proc.pid)
                await self._linger(pending)
            for task in readers:
                if task.done():
                    task.result()  # re-raises a failed send: the caller's connection is gone
        finally:
            leftovers: list[asyncio.Future[None] | None] = [
                *readers,
                writer,
                self._killer,
                self._eof_task,
            ]
            for leftover in leftovers:
                if leftover is not None and not leftover.done():
                    leftover.cancel()
            if self._notify_transport is not None:
                self._notify_transport.close()
            self._reap(reaper, proc.pid)
        code = proc.returncode
        assert code is not None
        exit_message: dict[str, Any] = {
            "t": "exit",
            "node": self.node,
            "code": code if code >= 0 else None,
            "signal": signals.Signals(-code).name if code < 0 else None,
            "duration": round(time.monotonic() - self._started, 6),
            "timed_out": self.timed_out,
            "cancelled": self.cancelled,
            "stdout_bytes": counts[STDOUT],
            "stderr_bytes": counts[STDERR],
        }
        if wanted(self._snapshot_spec, "after"):
            await self._snapshot("after", code)
        if self._snapshots:
            exit_message["snapshots"] = self._snapshots
        return exit_message

    async def _snapshot(self, moment: str, code: int | None = None) -> None:
        """Record the workspace for the request's ``snapshot`` (see ``node/jobs/snapshots.py``)."""
        spec = self._snapshot_spec
        assert spec is not None
        self._snapshots.append(
            await take_snapshot(
                spec,
                moment,
                label(spec, moment, self.command, code),
                workspace=self._workspace,
                env=self._job_env,
            )
        )

    async def _linger(self, readers: Iterable[asyncio.Future[None]]) -> set[asyncio.Future[None]]:
        """Wait for the readers; the grace only runs out while they are not held back by the
        window (a slow reader is not a lingering process)."""
        pending = set(readers)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=LINGER_GRACE)
            if pending and not self._sink.paused:
                break
        return pending

    async def _pump(self, fd: int, stream: int, counts: list[int]) -> None:
        """Read ``fd`` (non-blocking) into the sink until EOF. The read is attempted before
        waiting for readiness: a busy child keeps the pipe full, so most reads need no wakeup."""
        output = self._sink.output
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = os.read(fd, CHUNK_SIZE)
            except BlockingIOError:
                await _readable(loop, fd)
                continue
            if not chunk:
                return
            counts[stream] += len(chunk)
            await output(stream, chunk)

    async def _pump_notify(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                note = json.loads(line)
                kind = note["kind"]
                if not isinstance(kind, str):
                    raise TypeError(kind)
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "job %s on %s wrote an invalid notification line", self.request_id, self.node
                )
                continue
            self._sink.notify(kind, note.get("data"))

    async def write_stdin(self, offset: int, data: bytes | memoryview) -> None:
        """Queue stdin bytes (offsets must be contiguous); waits when the child reads slowly."""
        if self._stdin_queue is None:
            raise ProtocolError(f"job on {self.node!r} was not started with stdin")
        if offset != self._stdin_offset:
            raise ProtocolError(f"stdin offset {offset}, expected {self._stdin_offset}")
        self._stdin_offset += len(data)
        if self._stdin_unread:
            return  # dropped, as a pipe drops what its reader never reads
        await self._stdin_queue.put(bytes(data))

    def close_stdin(self) -> None:
        """End the child's stdin after what is queued (``eof``)."""
        queue = self._stdin_queue
        if queue is None or self._stdin_unread:
            return
        if queue.full():
            self._eof_task = asyncio.ensure_future(queue.put(None))
        else:
            queue.put_nowait(None)

    async def _write_stdin(self) -> None:
        proc, queue = self._proc, self._stdin_queue
        assert proc is not None
        assert proc.stdin is not None
        assert queue is not None
        try:
            while (data := await queue.get()) is not None:
                proc.stdin.write(data)
                await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child closed its stdin: what it did not read is dropped, as with a pipe
        finally:
            # Nobody takes from the queue any more: empty it, so a connection waiting to add
            # to a full one reads on (it would hold every request it carries, for good), and
            # drop what comes later (write_stdin).
            self._stdin_unread = True
            while not queue.empty():
                queue.get_nowait()

    def signal(self, name: str) -> None:
        """Deliver signal ``name`` to the job's process group (ValueError when unknown)."""
        self._killpg(parse_signal(name))

    def cancel(self) -> None:
        """Terminate the whole process group: SIGTERM, SIGKILL after the grace period."""
        if self._proc is not None and self._proc.returncode is None:
            self.cancelled = True
            self._kill_soon()

    def _kill_soon(self) -> None:
        self._sink.release()
        if self._killer is None:
            self._killer = asyncio.ensure_future(self._terminate())

    async def _terminate(self) -> None:
        proc = self._proc
        assert proc is not None
        reaper = job_reaper()
        reaper.signal(proc.pid, signals.SIGTERM)
        reaper.signal(proc.pid, signals.SIGCONT)  # a stopped process acts on SIGTERM once resumed
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE)
        except TimeoutError:
            await reaper.kill(proc.pid)

    @staticmethod
    def _reap(reaper: JobReaper, root: int) -> None:
        """The job is over: nothing it started outlives it (whatever its process group). A
        first pass now; further passes, if something survived it, beside the exit."""
        if reaper.signal(root, signals.SIGKILL):
            task = asyncio.ensure_future(reaper.kill(root))
            task.add_done_callback(lambda _: reaper.ended(root))
            _KILLS.add(task)
            task.add_done_callback(_KILLS.discard)
        else:
            reaper.ended(root)

    def _killpg(self, sig: signals.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # group already gone
            os.killpg(self._proc.pid, sig)
