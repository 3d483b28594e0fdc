"""``python -m codebolt_topo.narrative``: the store's commands as a small program.

This is what the orchestrator runs *on a node*, through the node protocol's exec channel, to
sync along edges and to snapshot around a request: the channel is already authenticated,
multiplexed and streams binary frames, so bundles need no second transport. It runs with the
node's workspace as its working directory (the executor's default) and finds the store with
:mod:`~codebolt_topo.narrative.locate`. Contract:

* binary results (``export``, ``export-tar``) are written raw to stdout; everything else prints
  one JSON document (see :mod:`~codebolt_topo.narrative.jsonform`);
* binary inputs (``import``, ``import-tar``, and ``export --have -``) are read from stdin;
* a :class:`~codebolt_topo.narrative.errors.NarrativeError` prints ``error: ...`` on stderr and
  exits 1 (usage errors exit 2), so the caller can relay one line.

argparse, not typer: this runs once per hop of every sync and must start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from codebolt_topo.narrative.errors import NarrativeError
from codebolt_topo.narrative.locate import default_environment, default_state_dir

__all__ = ["IdleGuard", "bound_cpu", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--workspace``, ``--state-dir``, ``--env`` on every command)."""
    parser = argparse.ArgumentParser(prog="python -m codebolt_topo.narrative")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=".", help="workspace (default: cwd)")
    common.add_argument("--state-dir", default=None, help="store directory (see locate.py)")
    common.add_argument("--env", default=None, help="environment name (default: $CODEBOLT_NODE)")
    sub = parser.add_subparsers(dest="command", required=True)
    heads = sub.add_parser("heads", parents=[common], help="thread tips as JSON")
    heads.add_argument("--remotes", action="store_true", help="include diverged copies")
    sub.add_parser("have", parents=[common], help="commits to send as a sender's --have")
    export = sub.add_parser("export", parents=[common], help="bundle to stdout")
    export.add_argument("--have", default=None, help="JSON list/object of commits held; - = stdin")
    export.add_argument("--thread", action="append", default=[])
    export.add_argument("--objective", action="append", default=[])
    export.add_argument("--remotes", action="store_true", help="include diverged copies")
    for name in ("import", "import-tar"):
        imp = sub.add_parser(name, parents=[common], help="read stdin (or FILE), print a report")
        imp.add_argument("file", nargs="?", default="-")
        imp.add_argument("--source-env", default=None)
        imp.add_argument("--copies", action="store_true", help="accept diverged copies")
    snap = sub.add_parser("snapshot", parents=[common], help="record the workspace")
    for flag in ("--objective", "--thread", "--run"):
        snap.add_argument(flag, required=True)
    for flag in ("--name", "--message", "--objective-name", "--thread-name", "--run-name"):
        snap.add_argument(flag, default=None)
    sub.add_parser("log", parents=[common], help="the hierarchy as JSON")
    restore = sub.add_parser("restore", parents=[common], help="make the workspace a snapshot")
    restore.add_argument("snapshot")
    restore.add_argument("--force", action="store_true")
    tar = sub.add_parser("export-tar", parents=[common], help="one snapshot as tar.gz to stdout")
    tar.add_argument("snapshot")
    return parser


@contextmanager
def _source(name: str, stdin: BinaryIO) -> Iterator[BinaryIO]:
    """The archive to import as a stream (read in bounded pieces, never whole).

    Standard input, when it is a pipe, is read through :class:`IdleGuard`: on a node it is
    the requester's upload, and a requester that went away sends neither data nor EOF.
    """
    if name == "-":
        if _is_pipe(stdin):
            idle = float(os.environ.get("CODEBOLT_NARRATIVE_STDIN_IDLE", "120"))
            # The readers only call read(n), which IdleGuard answers like a raw file.
            yield cast(BinaryIO, IdleGuard(stdin.fileno(), idle))
        else:
            yield stdin
        return
    with open(name, "rb") as handle:
        yield handle


class IdleGuard:
    """Read a pipe in bounded pieces; refuse when nothing arrives for *idle* seconds."""

    def __init__(self, fd: int, idle: float) -> None:
        self.fd, self.idle = fd, idle

    def read(self, size: int = 65536) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.idle)
        if not ready:
            raise NarrativeError(
                f"no input for {self.idle:g} s: the sender went away (import abandoned)"
            )
        return os.read(self.fd, max(1, min(size, 1 << 20)))


def _is_pipe(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def bound_cpu(seconds: int | None = None) -> None:
    """Cap this process's CPU time (``$CODEBOLT_NARRATIVE_CPU_SECONDS``, default 1800 s).

    Every import finishes or refuses in time proportional to its input, which the limits
    bound; this is the backstop should that ever fail to hold: the kernel ends the process
    (SIGXCPU), whoever is (or is no longer) waiting for it.
    """
    if seconds is None:
        seconds = int(os.environ.get("CODEBOLT_NARRATIVE_CPU_SECONDS", "1800"))
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _have(value: str | None, stdin: BinaryIO) -> list[str]:
    if value is None:
        return []
    raw = stdin.read() if value == "-" else value.encode()
    data = json.loads(raw or b"[]")
    values = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(values, list):
        raise NarrativeError("--have must be a JSON list of commits or an object of refs")
    return [str(v) for v in values]


def run(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Execute one parsed command against the store it names."""
    from codebolt_topo.narrative import jsonform
    from codebolt_topo.narrative.bundle import Selection
    from codebolt_topo.narrative.store import NarrativeStore

    workspace = Path(args.workspace)
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir(workspace)
    env = args.env or default_environment()
    if args.command == "export" and not (state_dir / "shadow.git").is_dir():
        return  # no store was ever made here: nothing to export, and asking makes none
    result: Any
    with NarrativeStore.open(state_dir, workspace, env) as store:
        if args.command == "heads":
            result = store.heads(include_remotes=args.remotes)
        elif args.command == "have":
            result = store.have()
        elif args.command == "export":
            have = _have(args.have, stdin)
            selection = Selection(
                threads=Selection.thread(*args.thread).threads,
                objectives=Selection.objective(*args.objective).objectives,
                remotes=args.remotes,
            )
            if not store.heads(include_remotes=args.remotes) and not (
                selection.threads or selection.objectives
            ):
                return  # an empty store exports nothing: zero bytes, the caller skips import
            stdout.write(store.export_bundle(selection, have=have))
            return
        elif args.command in ("import", "import-tar"):
            with _source(args.file, stdin) as data:
                if args.command == "import":
                    report = store.import_bundle(data, args.source_env or env, copies=args.copies)
                else:
                    report = store.import_tar(data, args.source_env)
            result = jsonform.report_json(report)
        elif args.command == "snapshot":
            result = jsonform.info_json(
                store.snapshot(
                    args.objective,
                    args.thread,
                    args.run,
                    name=args.name or "",
                    message=args.message or "",
                    objective_name=args.objective_name,
                    thread_name=args.thread_name,
                    run_name=args.run_name,
                )
            )
        elif args.command == "log":
            result = jsonform.log_json(store.log())
        elif args.command == "restore":
            result = jsonform.info_json(store.restore(args.snapshot, force=args.force))
        else:
            store.export_tar(args.snapshot, stdout)
            return
    stdout.write(json.dumps(result).encode() + b"\n")


def main(argv: list[str] | None = None) -> int:
    """Run the program; returns the exit status (0, 1 for a store error, 2 for usage)."""
    args = build_parser().parse_args(argv)
    if args.command in ("import", "import-tar"):
        bound_cpu()
    try:
        run(args, sys.stdin.buffer, sys.stdout.buffer)
    except (NarrativeError, OSError, ValueError) as error:
        message = str(error).replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return 0
