"""Narrative sync along an edge, run by the edge's sender node: the bundle never leaves the edge.

The orchestrator sends this node (the sender of edge ``self -> peer``) one admin ``sync {id,
peer, direction}`` and receives progress ``notify`` frames and one ``synced`` answer: no
bundle byte passes through it, and neither node needs the other's admin token. The sender
drives because it holds the link (whichever end dialed it: ``Router.link`` also returns the
connection a ``dial: receiver`` peer opened) and the right to run work on the receiver (any
edge sender may run commands there while its RemoteExecutionPlugin claims the gateway).

One transfer from *source* to *receiver* is three narrative commands, the same ones the
orchestrator's relayed sync runs (``engine/sync.py``), so nothing of git is done again here:

1. ``have`` on the receiver: the commits it holds;
2. ``export --have - --remotes`` on the source: a bundle incremental against them;
3. ``import --source-env <source> --copies`` on the receiver, the bundle streamed as its stdin
   as the export writes it; the import verifies everything before a ref moves.

``push`` is this node's store to the peer's, ``pull`` the peer's to this node's. Each end is a
:class:`NarrativeEnd`: :class:`LocalEnd` runs the entry point as a child process of the daemon
(like the snapshots of ``node/jobs/snapshots.py``: a hostile bundle costs a child its memory,
never the daemon its event loop), :class:`PeerEnd` runs it on the peer over the link with
``exec`` (its stdout and stdin are the link's flow-controlled streams). :func:`transfer` only
sequences the three steps; it is the same for both directions.

A source whose export fails midway never lets the receiver take a half bundle as whole: the
receiver's import is killed (here) or cancelled (on the peer) instead of seeing an end of input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from codebolt_topo.client.events import Exit, Failed, Output
from codebolt_topo.client.narrative_launch import narrative_argv
from codebolt_topo.errors import ExecError, TopoError
from codebolt_topo.wire.codec import encode

if TYPE_CHECKING:
    from codebolt_topo.client import ExecHandle, NodeClient
    from codebolt_topo.node.core import NodeCore

__all__ = [
    "REPORT_KINDS",
    "SYNC_TIMEOUT",
    "LocalEnd",
    "Moved",
    "NarrativeEnd",
    "PeerEnd",
    "Progress",
    "report_summary",
    "sync_along_edge",
    "transfer",
]

SYNC_TIMEOUT: Final = 3600.0
"""Seconds one transfer may take, all three steps (a first sync of a very large history)."""
_COMMAND_TIMEOUT: Final = 600.0
"""Seconds ``have`` may take on either end (what the relayed sync allows each command)."""
_CHUNK: Final = 256 * 1024
"""Bytes read from a local export's stdout at a time: one data frame's payload."""
_STDERR_KEPT: Final = 64 * 1024
"""Bytes of a command's stderr kept to name why it failed (its last line)."""
_CANCEL_WAIT: Final = 5.0

Progress = Callable[[str, int], Awaitable[None]]
"""Told each step as it starts (``have``, ``export``, ``import``) and the bytes moved so far."""


class NarrativeEnd(Protocol):
    """One end of a transfer: a narrative store reached here or over the link."""

    name: str
    """The node's name: the environment a bundle from it is imported as."""

    async def have(self) -> list[str]:
        """Commits the store holds (a sender's ``--have``)."""

    def export(self, have: Sequence[str]) -> AsyncGenerator[bytes, None]:
        """The bundle, incremental against ``have``, as it is written (no empty chunk; none
        at all for an empty store); raises ExecError at its end when the export failed."""

    async def import_bundle(self, bundle: AsyncIterator[bytes], source: str) -> dict[str, Any]:
        """Import ``bundle`` as received from environment ``source``; the import's report.
        When ``bundle`` raises, the import is stopped before its end of input and the error
        propagates: nothing moves."""


@dataclass(frozen=True, slots=True)
class Moved:
    """What one transfer moved: bundle bytes, and the import's report (None: nothing to send)."""

    bytes: int
    report: dict[str, Any] | None


async def transfer(source: NarrativeEnd, receiver: NarrativeEnd, progress: Progress) -> Moved:
    """Move what ``receiver`` lacks of ``source``'s history into it (see the module)."""
    await progress("have", 0)
    have = await receiver.have()
    await progress("export", 0)
    chunks = source.export(have)
    try:
        first = await anext(chunks, None)
        if first is None:
            return Moved(0, None)
        sent = len(first)
        await progress("import", sent)

        async def bundle() -> AsyncIterator[bytes]:
            nonlocal sent
            yield first
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk

        report = await receiver.import_bundle(bundle(), source.name)
        return Moved(sent, report)
    finally:
        await chunks.aclose()


class LocalEnd:
    """This node's own store: the entry point run as a child of the daemon, in the workspace
    and with the environment of the node's jobs (so the same store they snapshot into)."""

    def __init__(self, name: str, workspace: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self._workspace = workspace
        self._env = dict(env)

    async def _spawn(self, command: str, *args: str) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "codebolt_topo.narrative",
                command,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                cwd=self._workspace,
            )
        except OSError as exc:
            raise ExecError(
                f"node {self.name!r}: cannot start the narrative engine: {exc}",
                node=self.name,
                code="spawn-failed",
            ) from None

    async def have(self) -> list[str]:
        proc = await self._spawn("have")
        try:
            out, err = await asyncio.wait_for(proc.communicate(b""), _COMMAND_TIMEOUT)
        finally:
            await _reap(proc)
        _check(self.name, "have", proc.returncode, err)
        return _json_list(self.name, "have", out)

    async def export(self, have: Sequence[str]) -> AsyncGenerator[bytes, None]:
        proc = await self._spawn("export", "--have", "-", "--remotes")
        assert proc.stdin is not None
        assert proc.stdout is not None
        errors = asyncio.ensure_future(_tail(proc))
        try:
            proc.stdin.write(json.dumps(sorted(set(have))).encode())
            await proc.stdin.drain()
            proc.stdin.close()
            while chunk := await proc.stdout.read(_CHUNK):
                yield chunk
            await proc.wait()
            _check(self.name, "export", proc.returncode, await errors)
        finally:
            await _reap(proc, unread=proc.stdout)
            errors.cancel()

    async def import_bundle(self, bundle: AsyncIterator[bytes], source: str) -> dict[str, Any]:
        proc = await self._spawn("import", "--source-env", source, "--copies")
        assert proc.stdin is not None
        assert proc.stdout is not None
        out = asyncio.ensure_future(proc.stdout.read())
        errors = asyncio.ensure_future(_tail(proc))
        try:
            try:
                async for chunk in bundle:
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the import stopped reading: its exit status says why
            await proc.wait()
            _check(self.name, "import", proc.returncode, await errors)
            return _json_object(self.name, "import", await out)
        finally:
            await _reap(proc)  # a bundle that failed: killed before its end of input
            out.cancel()
            errors.cancel()


class PeerEnd:
    """The peer's store, reached over the link: each command one ``exec`` on the peer, its
    bundle as that job's stdout or stdin (flow-controlled like any job's streams)."""

    def __init__(self, client: NodeClient, name: str) -> None:
        self.name = name
        self._client = client

    async def _exec(
        self, command: str, *args: str, stdin: bytes | AsyncIterator[bytes] | None, timeout: float
    ) -> ExecHandle:
        """Start the command on the peer. Given up while its ``exec`` is on its way, the
        request is cancelled by id (a no-op when the frame never left): a job waiting for
        stdin nobody will send would otherwise hold on until its input's idle limit."""
        request_id = f"sync-{os.urandom(8).hex()}"
        try:
            return await self._client.exec(
                self.name,
                argv=narrative_argv(command, *args),
                timeout=timeout,
                stdin=stdin,
                request_id=request_id,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                link = await self._client.link()
                cancel = link.send(encode({"t": "cancel", "id": request_id}))
                await asyncio.wait_for(asyncio.shield(cancel), _CANCEL_WAIT)
            raise

    async def have(self) -> list[str]:
        handle = await self._exec("have", stdin=None, timeout=_COMMAND_TIMEOUT)
        out = await _collect(self.name, "have", handle)
        return _json_list(self.name, "have", out)

    async def export(self, have: Sequence[str]) -> AsyncGenerator[bytes, None]:
        wanted = json.dumps(sorted(set(have))).encode()
        handle = await self._exec(
            "export", "--have", "-", "--remotes", stdin=wanted, timeout=SYNC_TIMEOUT
        )
        ended = False
        try:
            err = bytearray()
            code: int | None = None
            async for event in handle:
                if isinstance(event, Output) and event.stream == "stdout":
                    if event.data:
                        yield event.data
                elif isinstance(event, Output):
                    err = _keep_tail(err, event.data)
                elif isinstance(event, Exit):
                    code = event.code
                elif isinstance(event, Failed):
                    ended = True
                    raise _failed(self.name, "export", event)
            ended = True
            _check(self.name, "export", code, bytes(err))
        finally:
            if not ended:  # given up before its end: the job on the peer stops too
                await _cancel(handle)

    async def import_bundle(self, bundle: AsyncIterator[bytes], source: str) -> dict[str, Any]:
        handle = await self._exec(
            "import", "--source-env", source, "--copies", stdin=bundle, timeout=SYNC_TIMEOUT
        )
        try:
            out = await _collect(self.name, "import", handle)
        except asyncio.CancelledError:
            await handle.stop_stdin()
            await _cancel(handle)
            raise
        finally:
            # An import that ended before its input did (it refused the bundle): stop sending,
            # and leave the bundle's source to its owner, not half-read by a writer task.
            await handle.stop_stdin()
        return _json_object(self.name, "import", out)


async def sync_along_edge(
    core: NodeCore, peer: str, direction: Literal["push", "pull"], progress: Progress
) -> dict[str, Any]:
    """Run one ``sync`` request on ``core`` (the sender of edge ``core -> peer``); the
    ``synced`` answer without its id. Raises ExecError (its code for the ``error`` answer)."""
    from codebolt_topo.client import NodeClient

    if peer not in core.router.peers:
        raise ExecError(
            f"node {core.name!r} has no edge to {peer!r}: a node syncs only with the receivers "
            f"of its own edges",
            node=peer,
            hop=core.name,
            code="bad-request",
        )
    started = time.monotonic()
    link = await core.router.link(peer)
    here = LocalEnd(core.name, core.workspace, core.base_env)
    there = PeerEnd(NodeClient(link, name=peer, resume=False), peer)
    source, receiver = (here, there) if direction == "push" else (there, here)
    try:
        moved = await asyncio.wait_for(transfer(source, receiver, progress), SYNC_TIMEOUT)
    except TimeoutError:
        raise ExecError(
            f"node {core.name!r}: sync {direction} with {peer!r} took more than {SYNC_TIMEOUT:g} s",
            node=peer,
            hop=core.name,
            code="internal",
        ) from None
    return {
        "t": "synced",
        "node": core.name,
        "peer": peer,
        "direction": direction,
        "bytes": moved.bytes,
        "seconds": round(time.monotonic() - started, 6),
        "report": None if moved.report is None else report_summary(moved.report),
    }


REPORT_KINDS: Final = ("created", "updated", "diverged", "unchanged", "skipped")
"""The outcomes an import reports, thread by thread (``narrative/jsonform.py``)."""


def report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """What a sync reports of an import: the thread ids of each outcome and the objects
    written. Only that goes to the orchestrator (the full report also names every ref and
    commit: four times the size of a frame that must stay under the protocol's limit), and
    only in that shape: a push's report is what the peer says, checked here, not trusted."""
    summary: dict[str, Any] = {
        kind: [
            change["thread"]
            for change in report.get(kind) or ()
            if isinstance(change, dict) and isinstance(change.get("thread"), str)
        ]
        for kind in REPORT_KINDS
    }
    written = report.get("objects_written")
    summary["objects_written"] = (
        written if isinstance(written, int) and not isinstance(written, bool) else 0
    )
    return summary


# Helpers: results, failures, children ---------------------------------------------------------
async def _collect(node: str, command: str, handle: ExecHandle) -> bytes:
    """The stdout of a command run on ``node``; ExecError naming why it failed."""
    result = await handle.result()
    try:
        result.raise_for_failures()
    except TopoError as exc:
        raise ExecError(f"node {node!r}: narrative {command}: {exc}", node=node) from None
    outcome = result[node]
    _check(node, command, outcome.exit.code if outcome.exit else None, outcome.stderr)
    return outcome.stdout


def _check(node: str, command: str, code: int | None, stderr: bytes) -> None:
    """ExecError with the last line of ``stderr`` when the command did not exit 0."""
    if code == 0:
        return
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    reason = lines[-1].removeprefix("error: ") if lines else f"exit status {code}"
    raise ExecError(f"node {node!r}: narrative {command}: {reason}", node=node, code="internal")


def _failed(node: str, command: str, event: Failed) -> ExecError:
    return ExecError(
        f"node {node!r}: narrative {command}: {event.message}",
        node=node,
        hop=event.hop,
        code=event.code,
    )


def _json_list(node: str, command: str, out: bytes) -> list[str]:
    value = _json(node, command, out)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ExecError(f"node {node!r}: narrative {command}: bad output", node=node)
    return value


def _json_object(node: str, command: str, out: bytes) -> dict[str, Any]:
    value = _json(node, command, out)
    if not isinstance(value, dict):
        raise ExecError(f"node {node!r}: narrative {command}: bad output", node=node)
    return value


def _json(node: str, command: str, out: bytes) -> Any:
    try:
        return json.loads(out)
    except ValueError:
        raise ExecError(f"node {node!r}: narrative {command}: bad output", node=node) from None


def _keep_tail(kept: bytearray, data: bytes) -> bytearray:
    kept += data
    return kept[-_STDERR_KEPT:] if len(kept) > _STDERR_KEPT else kept


async def _tail(proc: asyncio.subprocess.Process) -> bytes:
    """A child's stderr, read to its end (so it never blocks on a full pipe), the tail kept."""
    assert proc.stderr is not None
    kept = bytearray()
    while data := await proc.stderr.read(_CHUNK):
        kept = _keep_tail(kept, data)
    return bytes(kept)


async def _reap(
    proc: asyncio.subprocess.Process, unread: asyncio.StreamReader | None = None
) -> None:
    """Kill the child unless it exited, and collect it.

    *unread*: a pipe of the child that nobody reads any more, read here to its end. asyncio's
    ``wait()`` returns only once every pipe of the child is closed (Python 3.11), and a pipe
    whose buffer filled up is no longer read, so it never sees its end: an export given up
    with a full stdout would hold its sync forever. What is left is at most a pipe's buffer."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    if unread is not None:
        with contextlib.suppress(Exception):
            while await unread.read(_CHUNK):
                pass
    await asyncio.shield(proc.wait())


async def _cancel(handle: ExecHandle) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(handle.cancel()), _CANCEL_WAIT)
