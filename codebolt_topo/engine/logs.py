"""``codebolt logs``: a node's own log, wherever the node runs.

A local node's daemon writes ``.codebolt/<topology>/nodes/<node>/node.log`` (so does a node a
hybrid placed locally); that file outlives a failed start, which is when it is needed most: the
bind error ``apply`` printed is in it. Nodes elsewhere (a container, a VM, a sandbox) keep their
log where they run; their provider reads it (``Provider.logs``, the :class:`LogReader` hook:
docker's container log, the VM's node.log over SSH, the sandbox's through e2b's API, hybrid's
through the provider that placed the node), and one that cannot says so.

Lines are the daemon's logging lines (``2026-11-27 12:34:56,789 INFO ...``); ``since`` keeps
those at or after a time, and a line without a timestamp of its own (a traceback's body, a
message printed before logging was set up) takes the time of the stamped line that follows it,
or the file's modification time when none does.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.providers.base import LogsNotOffered

__all__ = ["LogLine", "LogReader", "node_log", "parse_since"]

POLL = 0.2
"""Seconds between looks at a followed file."""

_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,(\d{1,6}))?\s")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a node's log; ``at`` is its time (epoch seconds) when it can be told."""

    node: str
    at: float | None
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "at": self.at, "line": self.text}


@runtime_checkable
class LogReader(Protocol):
    """What a provider offers to make its nodes' logs readable from here: the log's lines as
    they are (oldest first), then, with ``follow``, new lines as they are written."""

    def logs(self, handle: dict[str, Any], *, follow: bool) -> AsyncIterator[str]: ...


def parse_since(value: str, now: float | None = None) -> float:
    """``10m``, ``90s``, ``2h``, ``1d`` ago, or a date and time (ISO 8601, local time unless it
    names its zone) -> epoch seconds."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNIT[match[2]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a duration (30s, 10m, 2h, 1d) or a date and time "
            "(2026-11-27T12:00:00)"
        ) from None


def _stamp(line: bytes) -> float | None:
    match = _STAMP.match(line)
    if match is None:
        return None
    try:
        base = datetime.strptime(match[1].decode(), "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        return None
    fraction = match[2]
    return base + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _timed(node: str, lines: list[bytes], fallback: float) -> list[LogLine]:
    """Each line with its time; unstamped lines take the next stamped line's time."""
    result: list[LogLine] = []
    pending: list[str] = []
    for raw in lines:
        text = raw.decode(errors="replace")
        at = _stamp(raw)
        if at is None:
            pending.append(text)
            continue
        result.extend(LogLine(node, at, waiting) for waiting in pending)
        pending.clear()
        result.append(LogLine(node, at, text))
    result.extend(LogLine(node, fallback, waiting) for waiting in pending)
    return result


def _select(lines: list[LogLine], since: float | None, tail: int | None) -> list[LogLine]:
    if since is not None:
        lines = [line for line in lines if line.at is None or line.at >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines


async def _follow_file(
    node: str, path: Path, since: float | None, tail: int | None, follow: bool
) -> AsyncIterator[LogLine]:
    """The file's lines, then (``follow``) what is appended, reopening it when the node is
    replaced (a new file at the same path, like ``tail -F``).

    Following keeps the file it reads open: a replacement removes the old file before the new
    daemon writes its own, and a file still open cannot have its inode number given to the new
    one, so "another file at this path" is told apart reliably (a number compared after the
    old file was freed could be the same number again, and the new log read from the old
    log's offset: its first lines lost)."""
    try:
        handle: BinaryIO | None = path.open("rb")
    except FileNotFoundError:
        if not follow:
            raise StateError(f"node {node!r} has no log yet ({path} does not exist)") from None
        handle = None
    try:
        backlog = handle.read() if handle is not None else b""
        mtime = os.fstat(handle.fileno()).st_mtime if handle is not None else time.time()
        complete, _, partial = backlog.rpartition(b"\n")
        for line in _select(
            _timed(node, complete.split(b"\n") if complete else [], mtime), since, tail
        ):
            yield line
        if not follow:
            if partial:
                yield LogLine(node, _stamp(partial) or mtime, partial.decode(errors="replace"))
            return
        if handle is not None:
            handle.seek(len(backlog) - len(partial))
        buffer = b""
        while True:
            await asyncio.sleep(POLL)
            if handle is not None:
                if handle.tell() > os.fstat(handle.fileno()).st_size:
                    handle.seek(0)  # truncated in place
                    buffer = b""
                buffer += handle.read()  # the old file's last lines come before the new file
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    yield LogLine(node, _stamp(raw) or time.time(), raw.decode(errors="replace"))
            if handle is None or _replaced(handle, path):
                fresh = _open_if_there(path)
                if fresh is None:
                    continue  # between a replacement's removal and its new file
                if handle is not None:
                    handle.close()
                handle, buffer = fresh, b""  # read from its top at the next turn
    finally:
        if handle is not None:
            handle.close()


def _replaced(handle: BinaryIO, path: Path) -> bool:
    """Whether ``path`` now names another file than the open ``handle`` (or none)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return True
    held = os.fstat(handle.fileno())
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def _open_if_there(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


async def _from_reader(
    node: str,
    reader: LogReader,
    handle: dict[str, Any],
    since: float | None,
    tail: int | None,
    follow: bool,
) -> AsyncIterator[LogLine]:
    backlog: deque[LogLine] = deque(maxlen=tail if tail is not None and tail > 0 else None)
    last: float | None = None
    async for text in reader.logs(handle, follow=follow):
        at = _stamp(text.encode()) or last
        last = at
        line = LogLine(node, at, text.rstrip("\n"))
        if since is not None and at is not None and at < since:
            continue
        if tail == 0:
            continue
        if tail is None or follow:
            yield line  # a provider's stream does not say where the backlog ends
        else:
            backlog.append(line)
    for line in backlog:
        yield line


def _local_log(state_file: StateBackend, node: NodeState | None, name: str) -> Path:
    recorded = node.handle.get("dir") if node is not None else None
    directory = Path(recorded) if recorded else state_file.runtime_dir / "nodes" / name
    return directory / "node.log"


async def node_log(
    path: Path,
    node: str,
    *,
    since: float | None = None,
    tail: int | None = None,
    follow: bool = False,
) -> AsyncIterator[LogLine]:
    """Lines of ``node``'s log (the last ``tail``, those since ``since``); with ``follow``, then
    every new line until the caller stops iterating."""
    from codebolt_topo.engine.runner import Engine
    from codebolt_topo.plan.validate import validate_file

    state_file = backend_for(path, validate_file(path).topology)
    state: State = state_file.load(sealed_ok=True)
    recorded = state.nodes.get(node)
    local = _local_log(state_file, recorded, node)
    if recorded is None and not local.exists():
        known = ", ".join(sorted(state.nodes)) or "none: the topology is not applied"
        raise ConfigError(
            f"no node {node!r} in the state of topology {state_file.name!r} (nodes: {known})"
        )
    if recorded is not None and recorded.handle and not local.exists():
        provider = Engine(state_file).provider(recorded.provider, state)
        unread = ConfigError(
            f"node {node!r} runs on provider {recorded.provider!r}, whose logs stay where the "
            "node runs: that provider does not offer them here yet"
        )
        if not isinstance(provider, LogReader):
            raise unread
        try:
            async for line in _from_reader(node, provider, recorded.handle, since, tail, follow):
                yield line
        except LogsNotOffered:
            raise unread from None
        return
    async for line in _follow_file(node, local, since, tail, follow):
        yield line
