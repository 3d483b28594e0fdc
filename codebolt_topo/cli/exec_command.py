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
    from collections.abc import Callable

    from codebolt_topo.client import ExecHandle, Exit, Failed, NodeClient, SnapshotRequest
    from codebolt_topo.engine.entry_node import Entry

__all__ = [
    "ExecStreams",
    "exec_with",
    "follow_handle",
    "parse_exec_args",
    "plan_exec",
    "run_exec",
]

UNDELIVERED = 255
TIMED_OUT = 124  # what coreutils timeout(1) returns


TOPOLOGY_SUFFIXES = (".yaml", ".yml", ".j2", ".jinja")
"""What makes exec's (and sync's) first argument a topology FILE: a YAML file or a template."""


def parse_exec_args(args: list[str]) -> tuple[Path, list[str]]:
    """Split off the optional topology FILE: the first argument, when it ends in .yaml, .yml or
    a template's .j2/.jinja (``topology.yaml.j2``).

    Only the suffix decides, never whether such a file exists: ``exec --all -- ./run.sh`` must
    not mistake the command for a topology.
    """
    rest = list(args)
    file = Path("topology.yaml")
    if rest and rest[0] != "--" and rest[0].endswith(TOPOLOGY_SUFFIXES):
        file = Path(rest.pop(0))
    return file, rest


class ExecStreams:
    """Where a request's output and messages go: this process's stdout and stderr.

    Writes block, as they always did: a slow reader of ``codebolt exec``'s stdout stalls the
    loop, so acknowledgements stop and the job is paused on its node (backpressure end to
    end). The broker (``cli/broker.py``) overrides :meth:`write` to block a thread instead."""

    def __init__(self, stdout: BinaryIO | None = None, stderr: BinaryIO | None = None) -> None:
        self.stdout = stdout or sys.stdout.buffer
        self.stderr = stderr or sys.stderr.buffer

    async def write(self, stream: str, data: bytes) -> None:
        """Write ``data`` to ``stream`` (``stdout`` or ``stderr``) and flush it."""
        out = self.stdout if stream == "stdout" else self.stderr
        out.write(data)
        out.flush()

    async def say(self, line: str) -> None:
        """One message line on stderr (``error: ...``, ``[node] started ...``)."""
        await self.write("stderr", line.encode(errors="replace") + b"\n")


class _Prefixer:
    """Prefixes each output line with its node's name when several nodes answer at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.partial: dict[tuple[str, str], bytes] = {}

    def lines(self, node: str, stream: str, data: bytes) -> bytes:
        """What to write now for ``data``: it as is, or its whole lines prefixed (the rest
        waits for its newline)."""
        if not self.enabled:
            return data
        buffered = self.partial.pop((node, stream), b"") + data
        *lines, tail = buffered.split(b"\n")
        prefix = f"[{node}] ".encode()
        if tail:
            self.partial[(node, stream)] = tail
        return b"".join(prefix + line + b"\n" for line in lines)

    def rest(self) -> list[tuple[str, bytes]]:
        """The unfinished last lines, prefixed, per stream (the request ended)."""
        tails = [
            (stream, f"[{node}] ".encode() + tail + b"\n")
            for (node, stream), tail in self.partial.items()
        ]
        self.partial.clear()
        return tails


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
    ca: str | None = None,
) -> int:
    from codebolt_topo.client import NodeClient

    async with NodeClient.connect(url, token, name=entry_node, ca=ca) as client:
        return await exec_with(
            client, targets, command, shell=shell, timeout=timeout, stdin=stdin, snapshot=snapshot
        )


async def exec_with(
    client: NodeClient,
    targets: list[str],
    command: list[str],
    *,
    shell: bool,
    timeout: float | None,
    stdin: bytes | None,
    snapshot: SnapshotRequest | None = None,
    streams: ExecStreams | None = None,
    cancel: asyncio.Event | None = None,
) -> int:
    """Send the command over ``client`` and follow it to its end; returns the exit status.

    Output goes to ``streams`` (this terminal by default). Ctrl-C cancels the request, or, when
    ``cancel`` is given, that event does (the broker hears it from the ``codebolt exec`` it
    serves)."""
    handle = await client.exec(
        targets if len(targets) > 1 else targets[0],
        argv=None if shell else command,
        shell=" ".join(command) if shell else None,
        timeout=timeout,
        stdin=stdin,
        snapshot=snapshot,
    )
    if cancel is None:
        return await follow_handle(handle, several=len(targets) > 1, timeout=timeout)

    async def cancel_when_asked() -> None:
        await cancel.wait()
        await handle.cancel()

    watcher = asyncio.ensure_future(cancel_when_asked())
    try:
        return await follow_handle(
            handle, several=len(targets) > 1, timeout=timeout, streams=streams, on_sigint=False
        )
    finally:
        watcher.cancel()


async def follow_handle(
    handle: ExecHandle,
    *,
    several: bool,
    timeout: float | None = None,
    interrupt: Callable[[], None] | None = None,
    streams: ExecStreams | None = None,
    on_sigint: bool = True,
) -> int:
    """Stream a request's events to ``streams`` (this terminal) until it ends; returns the exit
    status.

    Ctrl-C cancels the request on its nodes, unless ``interrupt`` is given (``jobs attach``
    detaches instead), or ``on_sigint`` is False (someone else decides)."""
    from codebolt_topo.client import Exit, Failed, Notification, Output, Started

    out = streams or ExecStreams()
    prefixer = _Prefixer(enabled=several)
    codes: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    if on_sigint:
        loop.add_signal_handler(
            signal.SIGINT, interrupt or (lambda: asyncio.ensure_future(handle.cancel()))
        )
    try:
        async for event in handle:
            if isinstance(event, Output):
                data = prefixer.lines(event.node, event.stream, event.data)
                if data:
                    await out.write(event.stream, data)
            elif isinstance(event, Exit):
                codes[event.node] = _exit_status(event)
                for taken in event.snapshots:
                    await out.say(f"[{event.node}] {_describe_snapshot(taken)}")
                if event.timed_out:
                    await out.say(
                        f"error: node {event.node!r}: timed out after {timeout} s, killed"
                    )
            elif isinstance(event, Failed):
                await out.say(f"error: {_describe_failure(event)}")
                codes[event.node or "?"] = 127 if event.code == "not-found" else UNDELIVERED
            elif isinstance(event, Notification):
                await out.say(f"[{event.node}] {event.kind}: {event.data}")
            elif isinstance(event, Started) and several:
                path = " -> ".join(event.path)
                await out.say(f"[{event.node}] started (pid {event.pid}, via {path})")
    finally:
        if on_sigint:
            loop.remove_signal_handler(signal.SIGINT)
        for stream, tail in prefixer.rest():
            await out.write(stream, tail)
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


def plan_exec(args: list[str], *, names_targets: bool) -> tuple[Path, list[str], list[str]]:
    """Split ``exec``'s arguments into (FILE, targets, command) without touching the topology.
    Without ``names_targets`` (``--all``, ``--requires``) no NODE argument is expected: the
    topology decides the targets."""
    file, rest = parse_exec_args(args)
    targets: list[str] = []
    if names_targets:
        if not rest:
            raise ConfigError("usage: codebolt exec [FILE] NODE[,NODE...] -- COMMAND [ARGS...]")
        targets = [t for t in rest.pop(0).split(",") if t]
    if rest and rest[0] == "--":
        rest.pop(0)
    if not rest:
        raise ConfigError("no command given (codebolt exec [FILE] NODE -- COMMAND [ARGS...])")
    for position, word in enumerate(rest, 1):
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:  # a byte the shell passed that is no UTF-8 (argv's escapes)
            raise ConfigError(
                f"word {position} of the command ({word!r}) is not UTF-8 text: a request "
                "carries its command as text; pass such bytes through the command's stdin "
                "(--stdin) or a file"
            ) from None
    return file, targets, rest


def joined_entry(file: Path, targets: list[str]) -> Entry | None:
    """Where ``exec`` enters on a developer's machine that joined a topology (``codebolt
    join`` in this directory, and no topology file here): the node it runs; its admin token is
    this machine's own. None elsewhere."""
    if file.exists():  # the usual case: nothing of joining imported on exec's path
        return None
    from codebolt_topo.engine.entry_node import Entry, UndeliverableError
    from codebolt_topo.providers.joined.member import DEFAULT_HOME, JoinedHome

    home = JoinedHome(DEFAULT_HOME)
    if not home.exists():
        return None
    membership = home.membership()
    if not membership.pid or not targets:
        raise UndeliverableError(
            f"joined node {membership.node!r} is not running here (run: codebolt join)"
            if not membership.pid
            else "name a target node (--all and --requires need the topology file)"
        )
    return Entry(
        node=membership.node, url=membership.url, token=membership.admin_token, targets=targets
    )


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
    from codebolt_topo.engine.entry_node import resolve_entry

    file, targets, command = plan_exec(args, names_targets=not all_nodes and not requires)
    if requires:
        from codebolt_topo.engine.select import select_targets

        if targets:
            raise ConfigError("name target nodes or use --requires, not both")
        from_node, targets = asyncio.run(
            select_targets(file, requires, from_node=from_node, every=all_nodes)
        )
        all_nodes = False
    entry = joined_entry(file, targets) or resolve_entry(
        file, targets or None, from_node=from_node, all_nodes=all_nodes
    )
    return asyncio.run(
        _stream(
            entry.node,
            entry.url,
            entry.token,
            entry.targets,
            command,
            shell=shell,
            timeout=timeout,
            stdin=stdin,
            snapshot=snapshot,
            ca=entry.ca,
        )
    )
