"""``codebolt history ...``: the narrative histories archived when nodes went (destroy, removed
from the file, replaced), listed and restored into a running node
(:mod:`codebolt_topo.engine.archives`; what is archived when:
:mod:`codebolt_topo.engine.history`)."""

from __future__ import annotations

from typing import Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg

__all__ = ["history_app"]

history_app = typer.Typer(
    help="Archived narrative histories of removed nodes: list, restore.", no_args_is_help=True
)


@history_app.command("list")
def history_list(file: FileArg = DEFAULT_FILE, as_json: AsJson = False) -> None:
    """Every archived history of the topology, oldest first."""
    from codebolt_topo.cli.output import print_json, use_json
    from codebolt_topo.engine.archives import archive_dir, list_archives
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.plan.validate import validate_file

    use_json(as_json)
    state_file = backend_for(file, validate_file(file).topology)
    archives = list_archives(state_file)
    if as_json:
        print_json([archive.document() for archive in archives])
        return
    if not archives:
        print(f"No archived history in {archive_dir(state_file)}.")
    for archive in archives:
        print(archive.describe())


@history_app.command("restore")
def history_restore(
    archive: Annotated[
        str,
        typer.Argument(
            help="An archive id from history list (or a unique prefix; a node's name: its "
            "latest archive).",
            metavar="ARCHIVE",
        ),
    ],
    file: FileArg = DEFAULT_FILE,
    node: Annotated[
        str | None,
        typer.Option(
            "--node", help="The running node to restore into (default: the archived node's name)."
        ),
    ] = None,
) -> None:
    """Import an archived history into a running node; then restore any of its snapshots with
    codebolt narrative restore SNAPSHOT --node NODE."""
    import asyncio

    from codebolt_topo.engine.archives import find_archive, restore_archive
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.plan.validate import validate_file

    state_file = backend_for(file, validate_file(file).topology)
    found = find_archive(state_file, archive)
    target = node or found.node
    report = asyncio.run(restore_archive(state_file.load(), found, target))
    threads = [change["thread"] for change in report.get("created", [])] + [
        change["thread"] for change in report.get("updated", [])
    ]
    print(
        f"Restored {found.id} into node {target!r}: {len(threads)} thread(s) "
        f"({', '.join(threads) or 'nothing new'})."
    )
