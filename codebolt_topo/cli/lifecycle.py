"""``plan``, ``apply`` and ``destroy``: what changes, and changing it.

Parsing and rendering only; the work is :mod:`codebolt_topo.engine.operations`. As in
Terraform: ``plan -out FILE`` saves a plan that ``apply FILE`` carries out exactly (or refuses,
when the state or the file moved since); ``--target`` and ``--replace`` narrow or force a plan;
answering anything but ``yes`` at the prompt changes nothing and exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg, LockTimeout, ShowSensitive
from codebolt_topo.cli.output import paint_plan, print_json, use_json

if TYPE_CHECKING:
    from codebolt_topo.engine.history import Discard
    from codebolt_topo.plan.diff import Plan

__all__ = ["apply", "destroy", "plan"]

Targets = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        help="Only this node and the rewiring of its neighbours "
        "(repeatable; a replicated node's name targets every replica).",
        metavar="NODE",
    ),
]
Replace = Annotated[
    list[str] | None,
    typer.Option(
        "--replace", help="Replace this node even if unchanged (repeatable).", metavar="NODE"
    ),
]
DiscardHistory = Annotated[
    bool,
    typer.Option(
        "--discard-history",
        help="Archive the narrative history of none of the nodes this replaces or removes: "
        "lose it all.",
    ),
]
DiscardHistoryOf = Annotated[
    list[str] | None,
    typer.Option(
        "--discard-history-of",
        help="Lose this node's narrative history instead of archiving it (repeatable): how a "
        "node whose history cannot be read is removed.",
        metavar="NODE",
    ),
]


def _discard(every: bool, nodes: list[str] | None) -> Discard:
    from codebolt_topo.engine.history import Discard

    return Discard.of(every, nodes or ())


def plan(
    file: FileArg = DEFAULT_FILE,
    as_json: AsJson = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 no changes, 2 changes, 1 error.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "-out",
            "--out",
            help="Save the plan here; apply it with: codebolt apply FILE.",
            metavar="PLANFILE",
        ),
    ] = None,
    target: Targets = None,
    replace: Replace = None,
    show_sensitive: ShowSensitive = False,
    discard_history: DiscardHistory = False,
    discard_history_of: DiscardHistoryOf = None,
) -> None:
    """Show what apply would change, with the reason for each change, and what becomes of the
    narrative history of the nodes it replaces or removes (archived, lost, or refused)."""
    use_json(as_json)
    from codebolt_topo.engine.operations import prepare_plan
    from codebolt_topo.engine.reasons import masked_plan, plan_document
    from codebolt_topo.model.template import TEMPLATE_VARS
    from codebolt_topo.plan.render import plan_as_text

    result = prepare_plan(
        file,
        targets=target or (),
        replace=replace or (),
        discard=_discard(discard_history, discard_history_of),
    )
    shown = masked_plan(result.plan, show_sensitive=show_sensitive)
    if out is not None:
        result.saved(
            file,
            variables=TEMPLATE_VARS.get(),
            targets=target or (),
            replace=replace or (),
            shown=masked_plan(result.plan),
        ).write(out)
    if as_json:
        document = plan_document(result.plan, show_sensitive=show_sensitive)
        document["state"] = {
            "lineage": result.state.lineage if result.state_exists else None,
            "serial": result.state.serial,
        }
        document["left_out"] = result.left_out
        document["history"] = [
            {
                "node": fate.node,
                "fate": fate.what,
                "detail": fate.detail,
                "replacing": fate.replacing,
                "discarded": fate.discarded,
                "refused": fate.blocks,
            }
            for fate in result.fates
        ]
        if out is not None:
            document["saved_to"] = str(out)
        print_json(document)
    else:
        print(paint_plan(plan_as_text(shown, show_sensitive=show_sensitive), sys.stdout))
        if result.history:
            print("\n" + "\n".join(result.history))
        if result.left_out:
            print(
                f"\nTargeting is in effect: {result.left_out} other change(s) are left for a "
                "full apply."
            )
        if out is not None:
            print(
                f"\nSaved the plan to {out}. To perform exactly these actions, run: "
                f"codebolt apply {out}"
            )
    if detailed_exitcode and result.plan.has_changes:
        raise typer.Exit(2)


def _confirm_on_terminal(
    auto_approve: bool, history: list[str] | None = None
) -> Callable[[Plan], bool]:
    """Show the plan (and ``history``: what becomes of removed nodes' history, filled in by the
    engine's notice before it asks); go ahead with --auto-approve, else ask 'yes'."""
    from codebolt_topo.errors import ConfigError
    from codebolt_topo.plan.render import plan_as_text

    def confirm(shown: Plan) -> bool:
        # ``shown`` is masked already unless --show-sensitive: print it as it is.
        print(paint_plan(plan_as_text(shown, show_sensitive=True), sys.stdout), flush=True)
        if history:
            print("\n" + "\n".join(history), flush=True)
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


def apply(
    file: Annotated[
        Path,
        typer.Argument(help="Topology file, or a plan saved with plan -out.", metavar="[FILE]"),
    ] = DEFAULT_FILE,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    lock_timeout: LockTimeout = 0.0,
    target: Targets = None,
    replace: Replace = None,
    show_sensitive: ShowSensitive = False,
    discard_history: DiscardHistory = False,
    discard_history_of: DiscardHistoryOf = None,
) -> None:
    """Create, rewire, replace or remove nodes so the running topology matches the file. The
    narrative history of each node it replaces or removes is archived first (codebolt history);
    a removed node whose history cannot be read is refused unless --discard-history-of NODE."""
    from codebolt_topo.cli.progress import StepReporter
    from codebolt_topo.engine.planfile import is_saved_plan

    discard = _discard(discard_history, discard_history_of)
    if is_saved_plan(file):
        _apply_saved(
            file, lock_timeout=lock_timeout, options=bool(target or replace), discard=discard
        )
        return
    from codebolt_topo.engine.operations import apply_topology

    history: list[str] = []
    with StepReporter() as progress:
        result, applied = apply_topology(
            file,
            confirm=_confirm_on_terminal(auto_approve, history),
            progress=progress,
            lock_timeout=lock_timeout,
            targets=target or (),
            replace=replace or (),
            show_sensitive=show_sensitive,
            discard=discard,
            notice=history.extend,
        )
    if not result.has_changes:
        print(f"No changes. Topology {result.topology!r} is up to date.")
    elif applied:
        print(f"Apply complete: {len(result.actions)} change(s).")
    else:
        raise typer.Exit(1)  # declined at the prompt, as Terraform does
    _warm_broker(file)


def _warm_broker(file: Path) -> None:
    """Leave the topology's exec broker starting (cli/broker_client.py): the commands that
    follow an apply are exec and status."""
    from codebolt_topo.cli.broker_client import warm_broker

    warm_broker(str(file))


def _apply_saved(file: Path, *, lock_timeout: float, options: bool, discard: Discard) -> None:
    from codebolt_topo.cli.progress import StepReporter
    from codebolt_topo.engine.operations import apply_saved_plan
    from codebolt_topo.errors import ConfigError
    from codebolt_topo.model.template import TEMPLATE_VARS

    if options:
        raise ConfigError(f"{file} is a saved plan: it carries its own --target and --replace")
    if TEMPLATE_VARS.get():
        raise ConfigError(
            f"{file} is a saved plan: it is applied with the template variables "
            "it was made with (drop --var and --vars-file)"
        )
    history: list[str] = []
    with StepReporter() as progress:
        saved, result, applied = apply_saved_plan(
            file,
            progress=progress,
            lock_timeout=lock_timeout,
            discard=discard,
            notice=history.extend,
        )
    if history:
        print("\n".join(history))
    if not result.has_changes:
        print(f"No changes. Topology {saved.topology!r} is up to date.")
    elif applied:
        print(f"Apply complete: {len(result.actions)} change(s) (saved plan {file}).")
    _warm_broker(Path(saved.file))


def destroy(
    file: FileArg = DEFAULT_FILE,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    lock_timeout: LockTimeout = 0.0,
    discard_history: DiscardHistory = False,
    discard_history_of: DiscardHistoryOf = None,
) -> None:
    """Stop every node of the topology and remove what apply created. Each node's narrative
    history is archived beside the state first (codebolt history list); a node whose history
    cannot be read is refused unless --discard-history-of NODE (or --discard-history)."""
    from codebolt_topo.cli.progress import StepReporter
    from codebolt_topo.engine.operations import destroy_topology

    history: list[str] = []
    with StepReporter() as progress:
        result, applied = destroy_topology(
            file,
            confirm=_confirm_on_terminal(auto_approve, history),
            progress=progress,
            lock_timeout=lock_timeout,
            discard=_discard(discard_history, discard_history_of),
            notice=history.extend,
        )
    if applied or not result.has_changes:
        from codebolt_topo.cli.broker_client import stop_broker

        stop_broker(str(file.absolute()))  # its connections lead nowhere now
    if not result.has_changes:
        print(f"Nothing to destroy for topology {result.topology!r}.")
    elif applied:
        print(f"Destroy complete: {len(result.actions)} node(s) stopped.")
    else:
        raise typer.Exit(1)  # declined at the prompt
