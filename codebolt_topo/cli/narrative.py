"""``codebolt narrative ...`` and ``codebolt sync``: parse, run, render.

Every narrative command is one invocation of the store's entry point
(:mod:`codebolt_topo.narrative.entry`): in this process for a local workspace, or on a node of a
running topology through the node protocol (``--node NAME``), so both paths print the same
thing from the same JSON.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codebolt_topo.cli.output import use_json

if TYPE_CHECKING:
    from codebolt_topo.client import SnapshotRequest

__all__ = ["narrative_app", "render_log", "run_sync", "snapshot_request"]

narrative_app = typer.Typer(
    help="Snapshots of a workspace (local, or a node's with --node): snapshot, log, restore, "
    "export, import.",
    no_args_is_help=True,
)

Workspace = Annotated[
    Path | None, typer.Option("--workspace", help="Workspace (default: cwd; on a node, its own).")
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Store dir (default: $CODEBOLT_STATE_DIR/narrative, "
        "else <workspace>.narrative beside the workspace).",
    ),
]
Env = Annotated[
    str | None, typer.Option("--env", help="Environment name (default: $CODEBOLT_NODE or local).")
]
Node = Annotated[str | None, typer.Option("--node", help="Run on this node of the topology.")]
File = Annotated[Path, typer.Option("--file", "-f", help="Topology file (with --node).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the JSON result.")]
DEFAULT_FILE = Path("topology.yaml")


def _invoke(
    command: str,
    args: list[str],
    *,
    node: str | None,
    file: Path,
    workspace: Path | None,
    state_dir: Path | None,
    env: str | None,
    stdin: bytes = b"",
) -> bytes:
    """Run one entry-point command locally or on *node*; returns its stdout."""
    common = [
        *(["--workspace", str(workspace)] if workspace else []),
        *(["--state-dir", str(state_dir)] if state_dir else []),
        *(["--env", env] if env else []),
    ]
    if node is None:
        from codebolt_topo.narrative.entry import build_parser, run

        out = io.BytesIO()
        run(build_parser().parse_args([command, *common, *args]), io.BytesIO(stdin), out)
        return out.getvalue()
    import asyncio

    return asyncio.run(_on_node(node, file, command, [*common, *args], stdin))


async def _on_node(node: str, file: Path, command: str, args: list[str], stdin: bytes) -> bytes:
    from codebolt_topo.client import NodeClient
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.engine.sync import node_narrative
    from codebolt_topo.errors import ConfigError
    from codebolt_topo.plan.validate import validate_file

    state = backend_for(file, validate_file(file).topology).load()
    held = state.nodes.get(node)
    if held is None or held.url is None:
        raise ConfigError(f"node {node!r} is not running in {file} (run: codebolt apply {file})")
    async with NodeClient.admin(held) as client:
        store = node_narrative(client, state, node)
        return await store.run(command, *args, stdin=stdin if stdin else None)


def _loads(data: bytes) -> Any:
    return json.loads(data)


@narrative_app.command()
def snapshot(
    objective: Annotated[str, typer.Option("--objective", help="Objective id.")],
    thread: Annotated[str, typer.Option("--thread", help="Thread id.")],
    run: Annotated[str, typer.Option("--run", help="Agent run id.")],
    name: Annotated[str, typer.Option("--name", help="Snapshot name.")] = "",
    message: Annotated[str, typer.Option("--message", "-m", help="Description.")] = "",
    node: Node = None,
    file: File = DEFAULT_FILE,
    workspace: Workspace = None,
    state_dir: StateDir = None,
    env: Env = None,
    as_json: AsJson = False,
) -> None:
    """Record the workspace as a new snapshot at the tip of THREAD."""
    use_json(as_json)
    args = ["--objective", objective, "--thread", thread, "--run", run]
    args += [*(["--name", name] if name else []), *(["--message", message] if message else [])]
    out = _invoke(
        "snapshot", args, node=node, file=file, workspace=workspace, state_dir=state_dir, env=env
    )
    info = _loads(out)
    if as_json:
        sys.stdout.write(out.decode())
        return
    print(
        f"snapshot {info['snapshot_id']} ({info['commit'][:12]}) {info['name']!r}: "
        f"objective {objective}, thread {thread}, run {run}, environment {info['environment']}"
    )


@narrative_app.command()
def log(
    node: Node = None,
    file: File = DEFAULT_FILE,
    workspace: Workspace = None,
    state_dir: StateDir = None,
    env: Env = None,
    as_json: AsJson = False,
) -> None:
    """Show Objective → Thread → Agent Run → Snapshot as a tree."""
    use_json(as_json)
    out = _invoke(
        "log", [], node=node, file=file, workspace=workspace, state_dir=state_dir, env=env
    )
    if as_json:
        sys.stdout.write(out.decode())
        return
    from rich.console import Console

    Console(highlight=False).print(render_log(_loads(out)))


def render_log(objectives: list[dict[str, Any]]) -> Any:
    """The JSON log (see narrative.jsonform) as a rich Tree."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree("narrative" if objectives else "narrative (no snapshots yet)")
    for objective in objectives:
        o = root.add(f"objective {escape(objective['id'])}: {escape(objective['name'])}")
        for thread in objective["threads"]:
            copy = f" [diverged copy from {thread['source_env']}]" if thread["source_env"] else ""
            t = o.add(
                f"thread {escape(thread['id'])}: {escape(thread['name'])}"
                f"{escape(copy)} @ {thread['head'][:12]}"
            )
            for run in thread["runs"]:
                r = t.add(f"run {escape(run['id'])}: {escape(run['name'])}")
                for s in run["snapshots"]:
                    r.add(
                        f"{s['commit'][:12]} {escape(s['name'])}  ({s['snapshot_id']}, "
                        f"{s['environment']}, {s['time']})"
                    )
    return root


@narrative_app.command()
def restore(
    snapshot_key: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id or commit.")],
    force: Annotated[bool, typer.Option("--force", help="Discard unsnapshotted changes.")] = False,
    node: Node = None,
    file: File = DEFAULT_FILE,
    workspace: Workspace = None,
    state_dir: StateDir = None,
    env: Env = None,
) -> None:
    """Make the workspace equal to SNAPSHOT (refuses to clobber changes unless --force)."""
    from codebolt_topo.errors import ConfigError, TopoError

    args = [snapshot_key, *(["--force"] if force else [])]
    try:
        info = _loads(
            _invoke(
                "restore",
                args,
                node=node,
                file=file,
                workspace=workspace,
                state_dir=state_dir,
                env=env,
            )
        )
    except TopoError as error:
        # The store words a dirty workspace for its Python API ("pass force=True"); on the
        # command line the way through is the flag.
        if "pass force=True" not in str(error):
            raise
        raise ConfigError(str(error).replace("pass force=True", "pass --force")) from None
    print(
        f"restored {info['snapshot_id']} ({info['commit'][:12]}) {info['name']!r} of thread "
        f"{info['thread']['id']}"
    )


@narrative_app.command("export")
def export_(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    thread: Annotated[list[str] | None, typer.Option("--thread", help="Only this thread.")] = None,
    objective: Annotated[list[str] | None, typer.Option("--objective", help="Its threads.")] = None,
    have: Annotated[
        Path | None,
        typer.Option(
            "--have", help="JSON heads the receiver holds (from `log --json`/heads): incremental."
        ),
    ] = None,
    tar: Annotated[
        str | None, typer.Option("--tar", help="One snapshot as tar.gz instead.")
    ] = None,
    node: Node = None,
    file: File = DEFAULT_FILE,
    workspace: Workspace = None,
    state_dir: StateDir = None,
    env: Env = None,
) -> None:
    """Write a git bundle of the threads (or --tar SNAPSHOT as tar.gz)."""
    if tar is not None:
        command, args, stdin = "export-tar", [tar], b""
    else:
        command, stdin = "export", have.read_bytes() if have else b""
        args = [*(["--have", "-"] if have else []), "--remotes"]
        args += [f"--thread={t}" for t in thread or []]
        args += [f"--objective={o}" for o in objective or []]
    data = _invoke(
        command,
        args,
        node=node,
        file=file,
        workspace=workspace,
        state_dir=state_dir,
        env=env,
        stdin=stdin,
    )
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        print(f"wrote {len(data)} bytes to {output}", file=sys.stderr)


@narrative_app.command("import")
def import_(
    archive: Annotated[Path, typer.Argument(help="A bundle or a tar.gz ('-': stdin).")],
    source_env: Annotated[
        str | None, typer.Option("--source-env", help="Where it came from.")
    ] = None,
    node: Node = None,
    file: File = DEFAULT_FILE,
    workspace: Workspace = None,
    state_dir: StateDir = None,
    env: Env = None,
    as_json: AsJson = False,
) -> None:
    """Verify, then import a bundle or tarball; diverged threads are kept side by side."""
    use_json(as_json)
    data = sys.stdin.buffer.read() if str(archive) == "-" else archive.read_bytes()
    command = "import-tar" if data[:2] == b"\x1f\x8b" else "import"
    args = ["-", *(["--source-env", source_env] if source_env else [])]
    args += ["--copies"] if command == "import" else []
    out = _invoke(
        command,
        args,
        node=node,
        file=file,
        workspace=workspace,
        state_dir=state_dir,
        env=env,
        stdin=data,
    )
    if as_json:
        sys.stdout.write(out.decode())
        return
    report = _loads(out)
    for kind in ("created", "updated", "diverged", "unchanged", "skipped"):
        for change in report[kind]:
            print(f"{kind:9} {change['thread']}  {change['ref']}  {change['new'][:12]}")
    print(f"{report['objects_written']} object(s) written")


def run_sync(file: Path, edges: list[str] | None) -> None:
    """``codebolt sync``: one line per transfer, then the total."""
    import asyncio

    from codebolt_topo.engine.sync import sync_edges, sync_from_joined
    from codebolt_topo.providers.joined.member import DEFAULT_HOME, JoinedHome

    def say(line: str) -> None:
        print(line, flush=True)

    home = JoinedHome(DEFAULT_HOME)
    if not file.exists() and home.exists():  # a machine that joined: its node pushes
        peers = [edge.split("->")[-1].strip() for edge in edges or []]
        report = asyncio.run(sync_from_joined(home, peers or None, progress=say))
    else:
        report = asyncio.run(sync_edges(file, edges, progress=say))
    if not report.transfers and report.elsewhere:
        return
    if not report.transfers:
        print("no edge declares sync (add sync: push|pull|both to an edge)")
        return
    print(f"sync complete: {len(report.transfers)} transfer(s), {report.bytes} bytes")


def snapshot_request(
    when: str | None, objective: str | None, thread: str | None, run: str | None
) -> SnapshotRequest | None:
    """``codebolt exec --snapshot before|after|both --objective O --thread T --run R`` as the
    request's :class:`~codebolt_topo.client.SnapshotRequest` (None without ``--snapshot``).

    Each executing node takes the snapshots itself, around its job and in the same request, so
    they bracket exactly the run they describe; the after-snapshot is taken whatever the exit
    status, so a failed run comes back as history too."""
    from codebolt_topo.client import SnapshotRequest
    from codebolt_topo.errors import ConfigError

    if when is None:
        if objective or thread or run:
            raise ConfigError("--objective, --thread and --run go with --snapshot")
        return None
    if when not in ("before", "after", "both"):
        raise ConfigError(f"--snapshot must be before, after or both, not {when!r}")
    if not (objective and thread and run):
        raise ConfigError("--snapshot needs --objective, --thread and --run")
    return SnapshotRequest(objective, thread, run, when)  # type: ignore[arg-type]
