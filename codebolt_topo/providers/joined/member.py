"""The developer's side of a joined node: exchange the credential, then run the node here.

``codebolt join URL --credentials FILE`` (:func:`join`) asks the join point at ``URL`` for the
node's offer over TLS pinned to the topology's CA and the join point's name, presenting the
proof of the one-time secret; opens the sealed launch config with the secret; gives it a
fresh admin token of this machine's own (the orchestrator never knows it), a workspace and a
state directory here; points every URL the orchestrator could only write as
:data:`~codebolt_topo.wire.joining.JOIN_HOST` at ``URL``'s host; and stores it all in the join
directory, 0600, with the topology's tokens walled off from the node's own jobs. Then it runs
the node's daemon until Ctrl-C (or ``codebolt leave``), which stops it cleanly: its neighbours
see it leave, and the orchestrator's ``status`` shows it STOPPED.

Joining again in the same directory resumes with the stored credentials: nothing is
exchanged, the one-time secret is not needed (and was used).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codebolt_topo.credentials import write_secret
from codebolt_topo.errors import ConfigError, StateError, TopoError
from codebolt_topo.readiness import daemon_command, read_ready
from codebolt_topo.wire.config import FenceSettings, LaunchConfig, token_digest
from codebolt_topo.wire.joining import (
    JOIN_HOST,
    JOIN_NODE_HEADER,
    JOIN_PATH,
    JOIN_PROOF_HEADER,
    JoinCredentials,
    join_proof,
    open_offer,
)
from codebolt_topo.wire.tls import client_context

__all__ = ["DEFAULT_HOME", "JoinedHome", "Membership", "fetch_offer", "join", "leave"]

DEFAULT_HOME = Path(".codebolt") / "joined"
"""Where ``codebolt join`` keeps a joined node's files, under the directory it runs in."""
_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Membership:
    """What the join directory records (``joined.json``): which node this machine runs, and
    how to reach it here (``codebolt exec`` from this machine enters the topology through it)."""

    topology: str
    node: str
    join_url: str
    admin_token: str
    port: int = 0
    pid: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class JoinedHome:
    """The join directory: ``launch.json`` (the node's launch config), ``joined.json`` (the
    :class:`Membership`), ``node/`` (its state, and its workspace unless given)."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()

    @property
    def launch_file(self) -> Path:
        return self.path / "launch.json"

    @property
    def record_file(self) -> Path:
        return self.path / "joined.json"

    def exists(self) -> bool:
        return self.launch_file.exists() and self.record_file.exists()

    def membership(self) -> Membership:
        try:
            return Membership(**json.loads(self.record_file.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise StateError(
                f"{self.record_file}: no joined node recorded here ({error}); run codebolt join"
            ) from None

    def save(self, membership: Membership) -> None:
        write_secret(self.record_file, json.dumps(_as_dict(membership)))


def _as_dict(membership: Membership) -> dict[str, Any]:
    return {name: getattr(membership, name) for name in Membership.__slots__}


def fetch_offer(url: str, credentials: JoinCredentials) -> str:
    """Ask the join point at ``url`` for the node's sealed launch config (one HTTPS request,
    the topology's CA pinned and the join point's name checked); its refusal, in its words."""
    parts = urlsplit(url)
    if parts.scheme != "wss" or not parts.hostname or not parts.port:
        raise ConfigError(f"join URL {url!r}: expected wss://HOST:PORT of the join point")
    context = client_context(credentials.ca)
    try:
        raw = socket.create_connection((parts.hostname, parts.port), timeout=_TIMEOUT)
    except OSError as error:
        raise ConfigError(f"cannot reach the join point at {url}: {error}") from None
    with contextlib.closing(raw):
        try:
            tls = context.wrap_socket(raw, server_hostname=credentials.join_point)
        except OSError as error:
            raise ConfigError(
                f"{url} is not join point {credentials.join_point!r} of topology "
                f"{credentials.topology!r} (TLS: {error})"
            ) from None
        with contextlib.closing(tls):
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=_TIMEOUT)
            connection.sock = tls
            connection.request(
                "GET",
                JOIN_PATH,
                headers={
                    JOIN_NODE_HEADER: credentials.node,
                    JOIN_PROOF_HEADER: join_proof(credentials.secret),
                },
            )
            response = connection.getresponse()
            body = response.read(1 << 20).decode(errors="replace")
    if response.status != 200:
        raise ConfigError(f"join point {credentials.join_point!r} refused: {body.strip()}")
    return body


def _rewire(launch: LaunchConfig, join_host: str) -> LaunchConfig:
    """``launch`` with every URL the orchestrator wrote for ``JOIN_HOST`` pointing at
    ``join_host``."""
    runtime = launch.runtime
    peers = {
        name: peer.model_copy(update={"url": peer.url.replace(JOIN_HOST, join_host)})
        if peer.url
        else peer
        for name, peer in runtime.peers.items()
    }
    dial = {
        name: out.model_copy(update={"url": out.url.replace(JOIN_HOST, join_host)})
        for name, out in runtime.dial.items()
    }
    return launch.model_copy(
        update={"runtime": runtime.model_copy(update={"peers": peers, "dial": dial})}
    )


def join(
    url: str | None,
    credentials_file: Path | None,
    home: JoinedHome,
    *,
    workspace: Path | None = None,
    say: Callable[[str], None] = print,
) -> Membership:
    """Exchange the credentials for the node's launch config and store it in ``home``; with
    ``home`` already joined, resume with what it stores (the credentials are not needed)."""
    if home.exists():
        membership = home.membership()
        say(f"{membership.node}: resuming with the credentials stored in {home.path}")
        return membership
    if credentials_file is None:
        raise ConfigError(
            f"{home.path} holds no joined node: give the credentials file the operator made "
            "with 'codebolt state credentials NODE' (--credentials FILE)"
        )
    try:
        credentials = JoinCredentials.model_validate_json(credentials_file.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{credentials_file}: not a join credentials file ({error})") from None
    url = url or credentials.url
    if JOIN_HOST in url:
        raise ConfigError(
            f"the credentials do not say where {credentials.join_point!r} is reachable from "
            "here: give its address (codebolt join wss://HOST:PORT --credentials FILE)"
        )
    host = urlsplit(url).hostname or ""
    sealed = fetch_offer(url, credentials)
    offered = LaunchConfig.model_validate_json(open_offer(credentials.secret, sealed))
    home.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home.path, 0o700)
    state_dir = home.path / "node"
    state_dir.mkdir(exist_ok=True, mode=0o700)
    # Its store lives beside its workspace (narrative/locate.py): under node/, both stay
    # reachable to its jobs while the rest of the join directory is walled off.
    work = (workspace or state_dir / "workspace").absolute()
    work.mkdir(parents=True, exist_ok=True)
    store = work.parent / f"{work.name}.narrative"
    admin_token = secrets.token_urlsafe(32)
    launch = _rewire(offered, host).model_copy(
        update={
            "admin_token_digest": token_digest(admin_token),
            "workspace": str(work),
            "state_dir": str(state_dir),
            "fence": FenceSettings(
                hidden=str(home.path),
                kept=[
                    str(state_dir),
                    *(
                        str(kept)
                        for kept in (work, store)
                        if kept.is_relative_to(home.path) and not kept.is_relative_to(state_dir)
                    ),
                ],
            ),
        }
    )
    write_secret(home.launch_file, launch.model_dump_json())
    membership = Membership(
        topology=credentials.topology,
        node=credentials.node,
        join_url=url,
        admin_token=admin_token,
    )
    home.save(membership)
    say(
        f"{credentials.node}: joined topology {credentials.topology!r} through "
        f"{credentials.join_point!r} at {url}"
    )
    return membership


def run(home: JoinedHome, say: Callable[[str], None] = print) -> int:
    """Run the joined node's daemon until it ends, Ctrl-C or ``codebolt leave`` (SIGTERM):
    each stops it cleanly (its neighbours see it leave). Returns the daemon's status."""
    membership = home.membership()
    read_fd, write_fd = os.pipe()
    with open(home.path / "node.log", "ab") as log:
        process = subprocess.Popen(
            daemon_command(home.launch_file, write_fd),
            pass_fds=(write_fd,),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    os.close(write_fd)
    stop = _forward_stops(process)
    try:
        ready = read_ready(read_fd, 30.0)
        if ready is None:
            process.terminate()
            process.wait()
            tail = (home.path / "node.log").read_text(errors="replace")[-1500:]
            raise StateError(f"node {membership.node} did not start:\n{tail}")
        port = int(ready["port"])
        membership = Membership(**{**_as_dict(membership), "port": port, "pid": process.pid})
        home.save(membership)
        say(
            f"{membership.node}: running here (pid {process.pid}), dialing its neighbours; "
            "Ctrl-C or 'codebolt leave' leaves"
        )
        status = process.wait()
    finally:
        stop()
        if process.poll() is None:
            process.terminate()
            process.wait()
        home.save(Membership(**{**_as_dict(membership), "pid": 0}))
    if status in (0, -signal.SIGTERM, -signal.SIGINT):
        say(f"{membership.node}: left")
        return 0
    say(f"{membership.node}: its daemon ended ({_ended(status)}); see {home.path / 'node.log'}")
    return 1


def _ended(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit status {status}"


def _forward_stops(process: subprocess.Popen[bytes]) -> Callable[[], None]:
    """Turn SIGINT/SIGTERM/SIGHUP of this process into a clean stop of the daemon (it runs in
    a session of its own, so nothing else would stop it); returns what restores the previous
    handlers."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: its terminal closed
    previous = {s: signal.signal(s, forward) for s in stops}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


async def look(home: JoinedHome) -> dict[str, Any]:
    """What ``codebolt status`` shows on the joined machine: the node, and its links."""
    from codebolt_topo.client import NodeClient

    membership = home.membership()
    shown: dict[str, Any] = {**_as_dict(membership), "running": bool(membership.pid)}
    del shown["admin_token"]
    if membership.pid:
        try:
            async with NodeClient.connect(membership.url, membership.admin_token) as node:
                info = await node.info()
        except (OSError, TopoError) as error:
            shown.update(running=False, error=str(error))
        else:
            shown.update(peers=info.get("peers", []), links=info.get("links", []))
    return shown


def leave(home: JoinedHome) -> Membership:
    """Stop the joined node running from ``home`` (its ``codebolt join`` then ends)."""
    membership = home.membership()
    if not membership.pid:
        raise StateError(f"node {membership.node} is not running from {home.path}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(membership.pid, signal.SIGTERM)
    return membership
