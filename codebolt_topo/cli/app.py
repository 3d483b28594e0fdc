"""The typer application. Each command parses, calls the library, renders.

Heavy modules (networkx, websockets, pydantic models) are imported inside the commands so that
``codebolt --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from codebolt_topo.plan.diff import Plan

__all__ = ["app"]

app = typer.Typer(
    name="codebolt",
    help="Turn a topology.yaml into a live network of coordinated execution environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
node_app = typer.Typer(help="Commands that run on a node itself.", no_args_is_help=True)
app.add_typer(node_app, name="node")
state_app = typer.Typer(help="Read or replace the state file.", no_args_is_help=True)
app.add_typer(state_app, name="state")
from codebolt_topo.cli.narrative import narrative_app  # noqa: E402 - typer only: stays fast

app.add_typer(narrative_app, name="narrative")


@app.callback()
def _globals(
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var", help="Template variable name=value (repeatable).", metavar="NAME=VALUE"
        ),
    ] = None,
    vars_file: Annotated[
        Path | None, typer.Option("--vars-file", help="YAML mapping of template variables.")
    ] = None,
) -> None:
    """Turn a topology.yaml into a live network of coordinated execution environments."""
    if var or vars_file:
        from codebolt_topo.cli.template_vars import set_template_vars

        set_template_vars(var or [], vars_file)


FileArg = Annotated[Path, typer.Argument(help="Topology file.", show_default=True)]
DEFAULT_FILE = Path("topology.yaml")
LockTimeout = Annotated[
    float, typer.Option("--lock-timeout", help="Wait this many seconds for the state lock.")
]


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@app.command()
def init(
    shape: Annotated[
        str, typer.Option("--shape", help="linear, fan-out, tree, mesh or hub.")
    ] = "linear",
    name: Annotated[
        str | None, typer.Option("--name", help="Topology name (default: the folder's).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing topology.yaml.")
    ] = False,
) -> None:
    """Write a working topology.yaml for one of the seed shapes into this folder."""
    import re

    from codebolt_topo.scaffold import scaffold

    default = re.sub(r"[^a-z0-9_-]+", "-", Path.cwd().name.lower()).strip("-_") or "demo"
    target = scaffold(Path.cwd(), shape, name or default[:63], force=force)
    print(f"Wrote {target.name} ({shape}). Next: codebolt plan, then codebolt apply.")


@app.command()
def validate(file: FileArg = DEFAULT_FILE) -> None:
    """Check a topology file: schema, edges, shape, ports. Reports every problem at once."""
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(file)
    topology = validated.topology
    shape = f", shape {topology.shape.value}" if topology.shape else ""
    print(f"{file}: valid ({len(topology.nodes)} nodes, {len(validated.edges)} edges{shape})")


@app.command()
def providers() -> None:
    """Installed providers: category and the capabilities their nodes get."""
    from rich.console import Console
    from rich.table import Table

    from codebolt_topo.providers.registry import describe_providers

    table = Table(title="providers")
    for column in ("name", "category", "capabilities", "module"):
        table.add_column(column)
    for row in describe_providers():
        table.add_row(row.name, row.category, ", ".join(row.capabilities) or "-", row.module)
    Console().print(table)


@app.command()
def plan(
    file: FileArg = DEFAULT_FILE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 no changes, 2 changes, 1 error.")
    ] = False,
) -> None:
    """Show what apply would change, with the reason for each change."""
    from codebolt_topo.engine.operations import plan_topology
    from codebolt_topo.plan.render import plan_as_json, plan_as_text

    result = plan_topology(file)
    print(json.dumps(plan_as_json(result), indent=2) if as_json else plan_as_text(result))
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(2)


def _confirm_on_terminal(auto_approve: bool) -> Callable[[Plan], bool]:
    """Show the plan; go ahead with --auto-approve, else ask 'yes' on a terminal."""
    from codebolt_topo.errors import ConfigError
    from codebolt_topo.plan.render import plan_as_text

    def confirm(plan: Plan) -> bool:
        print(plan_as_text(plan), flush=True)
        if auto_approve:
            return True
        if not sys.stdin.isatty():
            raise ConfigError("not a terminal: re-run with --auto-approve to apply without asking")
        answer = input("\nDo you want to perform these actions? Only 'yes' will be accepted: ")
        if answer.strip() != "yes":
            print("Cancelled: nothing was changed.")
            return False
        return True

    return confirm


@app.command()
def apply(
    file: FileArg = DEFAULT_FILE,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Create, rewire, replace or remove nodes so the running topology matches the file."""
    from codebolt_topo.engine.operations import apply_topology

    confirm = _confirm_on_terminal(auto_approve)
    result, applied = apply_topology(
        file,
        confirm=confirm,
        progress=_err,
        lock_timeout=lock_timeout,
    )
    if not result.has_changes:
        print(f"No changes. Topology {result.topology!r} is up to date.")
    elif applied:
        print(f"Apply complete: {len(result.actions)} change(s).")


@app.command()
def destroy(
    file: FileArg = DEFAULT_FILE,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Stop every node of the topology and remove what apply created."""
    from codebolt_topo.engine.operations import destroy_topology

    confirm = _confirm_on_terminal(auto_approve)
    result, applied = destroy_topology(
        file,
        confirm=confirm,
        progress=_err,
        lock_timeout=lock_timeout,
    )
    if not result.has_changes:
        print(f"Nothing to destroy for topology {result.topology!r}.")
    elif applied:
        print(f"Destroy complete: {len(result.actions)} node(s) stopped.")


@app.command()
def status(
    file: FileArg = DEFAULT_FILE,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    live: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 1.0,
) -> None:
    """Nodes of the running topology: lifecycle, endpoint, process, heartbeat, hops."""
    import asyncio

    from codebolt_topo.cli.status_view import render_table
    from codebolt_topo.engine.status import StatusCollector

    collector = StatusCollector(file)

    async def once() -> None:
        try:
            state, rows = await collector.collect()
        finally:
            await collector.close()
        if as_json:
            print(
                json.dumps(
                    {
                        "topology": state.topology,
                        "serial": state.serial,
                        "lineage": state.lineage,
                        "nodes": [r.as_json() for r in rows],
                    },
                    indent=2,
                )
            )
        elif not rows:
            print(f"Topology {state.topology!r} has no running nodes.")
        else:
            from rich.console import Console

            Console().print(render_table(state, rows))

    async def watch_live() -> None:
        from rich.console import Console
        from rich.live import Live

        try:
            state, rows = await collector.collect()
            with Live(render_table(state, rows), console=Console(), auto_refresh=False) as view:
                while True:
                    await asyncio.sleep(interval)
                    state, rows = await collector.collect()
                    view.update(render_table(state, rows), refresh=True)
        finally:
            await collector.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch_live() if live else once())


@app.command()
def watch(
    file: FileArg = DEFAULT_FILE,
    backoff_cap: Annotated[
        float, typer.Option("--backoff-cap", help="Longest wait between restarts of one node.")
    ] = 60.0,
    sync_interval: Annotated[
        float, typer.Option("--sync-interval", help="Seconds between narrative syncs along "
                            "sync: edges (0 disables).")
    ] = 60.0,
) -> None:
    """Keep the topology healthy: heartbeats, restarts by policy, rewiring. Ctrl-C stops."""
    import asyncio
    import signal

    from codebolt_topo.engine.reconcile import Reconciler

    def report(message: str) -> None:
        import time

        _err(f"{time.strftime('%H:%M:%S')} {message}")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        report(f"watching {file} (Ctrl-C to stop)")
        await Reconciler(file, report=report, backoff_cap=backoff_cap,
                         sync_interval=sync_interval or None).run(stop)
        report("stopped watching; nodes keep running")

    asyncio.run(run())


def _state_file(file: Path) -> object:
    from codebolt_topo.engine.operations import state_file_for
    from codebolt_topo.plan.validate import validate_file

    return state_file_for(file, validate_file(file).topology.name)


@app.command("force-unlock")
def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The exact lock id shown by the lock error.")],
    file: FileArg = DEFAULT_FILE,
) -> None:
    """Break a lock left by a hung run. The holder can no longer write the state."""
    from codebolt_topo.engine.statefile import StateFile

    state_file = _state_file(file)
    assert isinstance(state_file, StateFile)
    holder = state_file.force_unlock(lock_id)
    print(f"Unlocked {state_file.path} (was held by {holder}).")


@state_app.command("pull")
def state_pull(file: FileArg = DEFAULT_FILE) -> None:
    """Print the state as JSON (it contains tokens: keep it private)."""
    from codebolt_topo.engine.statefile import StateFile

    state_file = _state_file(file)
    assert isinstance(state_file, StateFile)
    print(state_file.load().model_dump_json(indent=2))


@state_app.command("credentials")
def state_credentials(
    node: Annotated[str, typer.Argument(help="The node whose credentials to write.")],
    file: FileArg = DEFAULT_FILE,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where to write them "
                                  "(default: NODE.credentials.json here).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write one node's URL and admin token to a 0600 file, for whoever acts as that node
    (a developer of a team topology) and nobody else. Use it with NodeClient.connect."""
    from codebolt_topo.credentials import Credentials, write_credentials
    from codebolt_topo.engine.statefile import StateFile
    from codebolt_topo.errors import ConfigError, StateError

    state_file = _state_file(file)
    assert isinstance(state_file, StateFile)
    state = state_file.load()
    if node not in state.nodes:
        known = ", ".join(sorted(state.nodes)) or "none: the topology is not applied"
        raise ConfigError(f"no node {node!r} in the state of {state_file.name!r} ({known})")
    found = state.nodes[node]
    if found.url is None:
        raise StateError(f"node {node!r} is {found.lifecycle.value}: it has no address yet")
    target = output or Path(f"{node}.credentials.json")
    write_credentials(target, Credentials(state.topology, node, found.url, found.admin_token),
                      force=force)
    print(f"Wrote {target} (mode 0600): node {node!r} at {found.url}. It holds the node's "
          "admin token: hand it to whoever acts as that node only.")


@state_app.command("push")
def state_push(
    source: Annotated[Path, typer.Argument(help="A state JSON file to install.")],
    file: FileArg = DEFAULT_FILE,
) -> None:
    """Install a state copy; refused for another lineage or a serial not newer than ours."""
    from pydantic import ValidationError

    from codebolt_topo.engine.statefile import StateFile
    from codebolt_topo.errors import StateError
    from codebolt_topo.model.state import State

    state_file = _state_file(file)
    assert isinstance(state_file, StateFile)
    try:
        incoming = State.model_validate_json(source.read_bytes())
    except (OSError, ValidationError) as error:
        raise StateError(f"{source}: not a readable state file: {error}") from None
    with state_file.locked("state push"):
        state_file.push(incoming)
    print(f"State of {state_file.name!r} replaced (serial {incoming.serial}).")


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    ascii = "ascii"
    svg = "svg"
    png = "png"


@app.command()
def graph(
    file: FileArg = DEFAULT_FILE,
    fmt: Annotated[
        GraphFormat, typer.Option("--format", help="Output format.")
    ] = GraphFormat.ascii,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Image file (svg/png): default NAME.FORMAT."),
    ] = None,
) -> None:
    """Draw the topology: text formats print, svg/png write a picture with node states coloured."""
    if fmt in (GraphFormat.svg, GraphFormat.png):
        from codebolt_topo.cli.graph_image import render_image

        print(f"Wrote {render_image(file, fmt.value, output)}")
        return
    from codebolt_topo.plan.validate import validate_file

    topology_graph = validate_file(file).graph
    render = {
        "mermaid": topology_graph.to_mermaid,
        "dot": topology_graph.to_dot,
        "ascii": topology_graph.to_ascii,
    }[fmt.value]
    print(render().rstrip("\n"))  # the renderers end in a newline: no blank line after


@app.command("exec")
def exec_(
    args: Annotated[
        list[str],
        typer.Argument(
            help="[FILE] NODE[,NODE...] -- COMMAND [ARGS...]  (FILE when it ends in .yaml/.yml)",
            show_default=False,
        ),
    ],
    from_node: Annotated[str | None, typer.Option("--from", help="Entry node.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds before the command is killed.")
    ] = None,
    all_nodes: Annotated[
        bool, typer.Option("--all", help="Every node reachable from the entry.")
    ] = False,
    shell: Annotated[
        bool, typer.Option("--shell", help="Run COMMAND as one /bin/sh -c string.")
    ] = False,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Send this process's stdin to the command.")
    ] = False,
    requires: Annotated[
        list[str] | None,
        typer.Option(
            "--requires",
            help="Route to the nearest node offering this capability "
            "(repeatable; with --all: every such node).",
        ),
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="before|after|both: each target records its "
            "workspace in its narrative store around the command (same request).",
        ),
    ] = None,
    objective: Annotated[str | None, typer.Option("--objective", help="With --snapshot.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="With --snapshot.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="With --snapshot.")] = None,
) -> None:
    """Run a command on a node (or several), routed along the edges; output streams back."""
    from codebolt_topo.cli.exec_command import run_exec

    data = sys.stdin.buffer.read() if stdin else None

    from codebolt_topo.cli.narrative import snapshot_request

    raise typer.Exit(
        run_exec(
            args,
            from_node=from_node,
            timeout=timeout,
            all_nodes=all_nodes,
            shell=shell,
            stdin=data,
            requires=requires or None,
            snapshot=snapshot_request(snapshot, objective, thread, run),
        )
    )


@app.command()
def sync(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[FILE] [EDGE...]: edges as a->b (default: every edge with sync).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Move narrative history along the edges that declare sync: push, pull or both."""
    from codebolt_topo.cli.exec_command import parse_exec_args
    from codebolt_topo.cli.narrative import run_sync

    file, edges = parse_exec_args(list(args or []))
    run_sync(file, edges or None)


@node_app.command("serve")
def node_serve(
    config: Annotated[Path, typer.Option("--config", help="LaunchConfig JSON (mode 0600).")],
    ready_fd: Annotated[
        int | None, typer.Option("--ready-fd", help="Write readiness here.")
    ] = None,
) -> None:
    """Run this machine's node daemon (the ProviderServer on port 3100 by default)."""
    from codebolt_topo.node.daemon import run_daemon

    raise typer.Exit(run_daemon(config, ready_fd))
