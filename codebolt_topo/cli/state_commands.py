"""``codebolt state ...`` and ``force-unlock``: reading, replacing and unlocking the state, its
kept versions, moving it between backends and rotating the key that seals its tokens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, AsJson, FileArg, LockTimeout, NodeArg

if TYPE_CHECKING:
    from codebolt_topo.engine.statefile import StateBackend

__all__ = ["force_unlock", "state_app"]

state_app = typer.Typer(
    help="Read, replace, list, migrate or re-key the state.", no_args_is_help=True
)


def _state_file(file: Path) -> StateBackend:
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.plan.validate import validate_file

    return backend_for(file, validate_file(file).topology)


def force_unlock(
    lock_id: Annotated[
        str, typer.Argument(help="The exact lock id shown by the lock error.", metavar="LOCK_ID")
    ],
    file: FileArg = DEFAULT_FILE,
) -> None:
    """Break a lock left by a hung run. The holder can no longer write the state."""
    state_file = _state_file(file)
    holder = state_file.force_unlock(lock_id)
    print(f"Unlocked {state_file.location} (was held by {holder}).")


@state_app.command("pull")
def state_pull(
    file: FileArg = DEFAULT_FILE,
    serial: Annotated[
        int | None,
        typer.Option(
            "--serial", help="A kept version (see state versions) instead of the current one."
        ),
    ] = None,
) -> None:
    """Print the state as JSON: tokens opened when the state key is here (keep it private),
    sealed otherwise. The topology CA's private key stays sealed either way: nobody needs it
    outside apply, and a printed CA key would let its reader mint any node's certificate."""
    from codebolt_topo.cli.output import use_json

    use_json(True)  # its output is JSON: so are its errors
    backend = _state_file(file)
    if serial is None:
        state = backend.load(sealed_ok=True)
    else:
        state = backend.load_version(serial, sealed_ok=True)
    if state.ca is not None:
        sealed = backend.keyring.seal_document({"ca": {"key": state.ca.key}})["ca"]["key"]
        state = state.model_copy(update={"ca": state.ca.model_copy(update={"key": sealed})})
    print(state.model_dump_json(indent=2))


@state_app.command("versions")
def state_versions(file: FileArg = DEFAULT_FILE, as_json: AsJson = False) -> None:
    """List every kept version of the state (the postgres backend keeps them all)."""
    import dataclasses
    import json

    from codebolt_topo.cli.output import use_json

    use_json(as_json)
    versions = _state_file(file).versions()
    if as_json:
        print(json.dumps([dataclasses.asdict(v) for v in versions], indent=2))
        return
    print(f"{'SERIAL':>6}  {'WRITTEN':<22}  {'NODES':>5}  {'LINEAGE':<32}  BY")
    for v in versions:
        print(f"{v.serial:>6}  {v.written_at:<22}  {v.nodes:>5}  {v.lineage:<32}  {v.written_by}")


@state_app.command("migrate")
def state_migrate(
    to: Annotated[
        str, typer.Option("--to", help="The backend to move the state to: file or postgres.")
    ],
    file: FileArg = DEFAULT_FILE,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Copy the state, every kept version of its lineage, to another backend (under both
    locks; tokens stay sealed, no key needed). The file backend's copy is retired."""
    from codebolt_topo.engine.backends.migrate import migrate_state
    from codebolt_topo.plan.validate import validate_file

    report = migrate_state(file, validate_file(file).topology, to, lock_timeout=lock_timeout)
    print(
        f"Migrated {report.versions} version(s) of {report.name!r} (serial {report.serial}) "
        f"from {report.source} to {report.target}."
    )
    if report.retired is not None:
        print(f"The file copy is kept as {report.retired}, out of the way.")
    print(f"Now use it there: {report.hint}")


@state_app.command("rotate-key")
def state_rotate_key(
    file: FileArg = DEFAULT_FILE,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="Where to write the new key (default: the key file beside the state).",
            metavar="PATH",
        ),
    ] = None,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Seal every token of the state (and every kept version) with a new key, under the
    lock. The old key file is kept beside it with an .old suffix."""
    from codebolt_topo.engine.rekey import rotate_key

    report = rotate_key(_state_file(file), new_key_file, lock_timeout=lock_timeout)
    print(
        f"State key rotated: {', '.join(report.old) or 'none'} -> {report.new}; "
        f"{report.rewritten} stored version(s) rewritten. New key: {report.key_file} (0600)."
    )
    if report.kept_old is not None:
        print(f"Old key kept as {report.kept_old}.")
    print(
        "Hand the new key to whoever acts on these nodes (CODEBOLT_STATE_KEY or "
        "CODEBOLT_STATE_KEY_FILE); the old one no longer opens the state."
    )


@state_app.command("credentials")
def state_credentials(
    node: NodeArg,
    file: FileArg = DEFAULT_FILE,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Where to write them (default: NODE.credentials.json here).",
            metavar="OUT",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    renew: Annotated[
        bool,
        typer.Option(
            "--renew",
            help="Joined nodes: issue a new one-time join credential (the old one is refused "
            "as revoked) and re-apply to hand it to the join point.",
        ),
    ] = False,
) -> None:
    """Write one node's URL and admin token (and the topology's CA to pin, when the node serves
    TLS) to a 0600 file, for whoever acts as that node (a developer of a team topology) and
    nobody else. Use it with NodeClient.connect. For a joined node: its one-time join
    credential, for 'codebolt join URL --credentials FILE' on the developer's machine."""
    from codebolt_topo.credentials import Credentials, write_credentials
    from codebolt_topo.engine.joined_nodes import dials_out_only
    from codebolt_topo.errors import ConfigError, StateError

    state_file = _state_file(file)
    state = state_file.load()
    if node not in state.nodes:
        known = ", ".join(sorted(state.nodes)) or "none: the topology is not applied"
        raise ConfigError(f"no node {node!r} in the state of {state_file.name!r} ({known})")
    found = state.nodes[node]
    if dials_out_only(found):
        _join_credentials(file, node, output, force=force, renew=renew)
        return
    if renew:
        raise ConfigError(f"--renew: node {node!r} is a {found.provider} node, not a joined one")
    if found.url is None:
        raise StateError(f"node {node!r} is {found.lifecycle.value}: it has no address yet")
    target = output or Path(f"{node}.credentials.json")
    write_credentials(
        target,
        Credentials(state.topology, node, found.url, found.admin_token, found.pinned_ca),
        force=force,
    )
    print(
        f"Wrote {target} (mode 0600): node {node!r} at {found.url}. It holds the node's "
        "admin token: hand it to whoever acts as that node only."
    )


def _join_credentials(
    file: Path, node: str, output: Path | None, *, force: bool, renew: bool
) -> None:
    """Write joined node ``node``'s one-time join credential (after renewing it)."""
    from codebolt_topo.engine.joining import credentials, write_credentials
    from codebolt_topo.engine.operations import renew_join_credential
    from codebolt_topo.errors import ConfigError
    from codebolt_topo.wire.joining import JOIN_HOST

    state_file = _state_file(file)
    if renew:
        renew_join_credential(file, node, progress=lambda message: print(f"  {message}"))
    made = credentials(state_file.load(), node)
    target = output or Path(f"{node}.join.json")
    if target.exists() and not force and not renew:
        raise ConfigError(f"{target} exists (use --force to replace it)")
    write_credentials(made, target)
    url, where = made.url, ""
    if JOIN_HOST in url:  # the join point listens on every interface: say which to use
        url = url.replace(JOIN_HOST, "ADDRESS")
        where = f"\n(ADDRESS: this machine's address as {node}'s machine reaches it)"
    print(
        f"Wrote {target} (mode 0600): the one-time join credential of {node!r}, joining "
        f"through {made.join_point!r}. Hand it to its developer only; on their machine:\n"
        f"  codebolt join {url} --credentials {target.name}{where}"
    )


@state_app.command("push")
def state_push(
    source: Annotated[
        Path, typer.Argument(help="A state JSON file to install.", metavar="STATE.json")
    ],
    file: FileArg = DEFAULT_FILE,
) -> None:
    """Install a state copy; refused for another lineage or a serial not newer than ours."""
    from pydantic import ValidationError

    from codebolt_topo.errors import StateError
    from codebolt_topo.model.state import State

    state_file = _state_file(file)
    try:
        incoming = State.model_validate_json(source.read_bytes())
    except (OSError, ValidationError) as error:
        raise StateError(f"{source}: not a readable state file: {error}") from None
    with state_file.locked("state push"):
        state_file.push(incoming)
    print(f"State of {state_file.name!r} replaced (serial {incoming.serial}).")
