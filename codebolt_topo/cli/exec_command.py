"""``codebolt exec``: route a command into the topology and stream its output to this terminal.

Exit status follows the conventions people already script against: the remote exit code for one
target; 128 + signal number when it was killed by a signal; 124 when ``--timeout`` killed it (as
timeout(1) does); 127 when the command was not found; 255 when the request could not be delivered
(like ssh). With several targets, output lines are prefixed with ``[node]`` and the status is the
first non-zero one.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from codebolt_topo.errors import ConfigError

if TYPE_CHECKING:
    from codebolt_topo.client import Exit, Failed, SnapshotRequest

__all__ = ["parse_exec_args", "run_exec"]

UNDELIVERED = 255
TIMED_OUT = 124  # what coreutils timeout(1) returns


def parse_exec_args(args: list[str]) -> tuple[Path, list[str]]:
    """Split off the optional topology FILE: the first argument, when it ends in .yaml or .yml.

    Only the suffix decides, never whether such a file exists: ``exec --all -- ./run.sh`` must
    not mistake the command for a topology.
    """
    rest = list(args)
    file = Path("topology.yaml")
    if rest and rest[0].endswith((".yaml", ".yml")):
        file = Path(rest.pop(0))
    return file, rest


class _Prefixer:
    """Prefixes each output line with its node's name when several nodes answer at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.partial: dict[tuple[str, str], bytes] = {}

    def write(self, out: BinaryIO, node: str, stream: str, data: bytes) -> None:
        if not self.enabled:
            out.write(data)
            out.flush()
            return
        buffered = self.partial.pop((node, stream), b"") + data
        *lines, tail = buffered.split(b"\n")
        prefix = f"[{node}] ".encode()
        out.write(b"".join(prefix + line + b"\n" for line in lines))
        out.flush()
        if tail:
            self.partial[(node, stream)] = tail

    def flush(self, streams: dict[str, BinaryIO]) -> None:
        for (node, stream), tail in self.partial.items():
            streams[stream].write(f"[{node}] ".encode() + tail + b"\n")
            streams[stream].flush()
        self.partial.clear()


async def _stream(
    entry_node: str,
    url: str,
    token: str,
    targets: list[str],
    command: list[str],
    *,
    shell: bool,
    timeout: float | None,
    stdin: bytes | None,
    snapshot: SnapshotRequest | None = None,
) -> int:
    from codebolt_topo.client import Exit, Failed, NodeClient, Notification, Output, Started

    streams: dict[str, BinaryIO] = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    prefixer = _Prefixer(enabled=len(targets) > 1)
    codes: dict[str, int] = {}
    async with NodeClient.connect(url, token, name=entry_node) as client:
        handle = await client.exec(
            targets if len(targets) > 1 else targets[0],
            argv=None if shell else command,
            shell=" ".join(command) if shell else None,
            timeout=timeout,
            stdin=stdin,
            snapshot=snapshot,
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, lambda: asyncio.ensure_future(handle.cancel()))
        try:
            async for event in handle:
                if isinstance(event, Output):
                    prefixer.write(streams[event.stream], event.node, event.stream, event.data)
                elif isinstance(event, Exit):
                    codes[event.node] = _exit_status(event)
                    for taken in event.snapshots:
                        print(f"[{event.node}] {_describe_snapshot(taken)}", file=sys.stderr,
                              flush=True)
                    if event.timed_out:
                        print(f"error: node {event.node!r}: timed out after {timeout} s, killed",
                              file=sys.stderr, flush=True)
                elif isinstance(event, Failed):
                    print(f"error: {_describe_failure(event)}", file=sys.stderr, flush=True)
                    codes[event.node or "?"] = 127 if event.code == "not-found" else UNDELIVERED
                elif isinstance(event, Notification):
                    print(f"[{event.node}] {event.kind}: {event.data}", file=sys.stderr, flush=True)
                elif isinstance(event, Started) and len(targets) > 1:
                    print(
                        f"[{event.node}] started (pid {event.pid}, via {' -> '.join(event.path)})",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            prefixer.flush(streams)
    return next((code for code in codes.values() if code != 0), 0)


def _describe_snapshot(taken: dict[str, Any]) -> str:
    if "error" in taken:
        return f"snapshot ({taken.get('when')}) failed: {taken['error']}"
    commit = str(taken.get("commit"))[:12]
    return f"snapshot {taken.get('snapshot_id')} ({commit}) {taken.get('name')!r}"


def _describe_failure(event: Failed) -> str:
    """One line naming the target, the hop where it failed (when not already said) and why."""
    message = event.message
    if event.node and f"{event.node!r}" not in message:
        message = f"node {event.node!r}: {message}"
    if event.hop and event.hop != event.node and f"{event.hop!r}" not in message:
        message = f"{message} (at hop {event.hop!r})"
    return f"{message} [{event.code}]"


def _exit_status(event: Exit) -> int:
    if event.timed_out:
        return TIMED_OUT
    code = getattr(event, "code", None)
    if code is not None:
        return int(code)
    name = getattr(event, "signal", None)
    try:
        return 128 + int(signal.Signals[name]) if name else 1
    except KeyError:
        return 1


def run_exec(
    args: list[str],
    *,
    from_node: str | None,
    timeout: float | None,
    all_nodes: bool,
    shell: bool,
    requires: list[str] | None = None,
    stdin: bytes | None = None,
    snapshot: SnapshotRequest | None = None,
) -> int:
    """Resolve the entry node from the state file, send the command, stream until it ends.

    With ``snapshot`` each executing node records its workspace around the command, in the
    same request (``Exit.snapshots``), and each snapshot is reported on stderr."""
    from codebolt_topo.engine.entry import resolve_entry

    file, rest = parse_exec_args(args)
    targets: list[str] = []
    if not all_nodes and not requires:
        if not rest:
            raise ConfigError("usage: codebolt exec [FILE] NODE[,NODE...] -- COMMAND [ARGS...]")
        targets = [t for t in rest.pop(0).split(",") if t]
    if rest and rest[0] == "--":
        rest.pop(0)
    if not rest:
        raise ConfigError("no command given (codebolt exec [FILE] NODE -- COMMAND [ARGS...])")
    if requires:
        from codebolt_topo.engine.select import select_targets

        if targets:
            raise ConfigError("name target nodes or use --requires, not both")
        from_node, targets = asyncio.run(
            select_targets(file, requires, from_node=from_node, every=all_nodes)
        )
        all_nodes = False
    entry = resolve_entry(file, targets or None, from_node=from_node, all_nodes=all_nodes)
    return asyncio.run(
        _stream(
            entry.node, entry.url, entry.token, entry.targets, rest,
            shell=shell, timeout=timeout, stdin=stdin, snapshot=snapshot,
        )
    )
