"""A team on one topology (issue 16): users in separate directories sharing its state in one real
PostgreSQL (tests/postgres_server.py), through the real CLI.

Both users plan, apply and exec; a concurrent apply is refused naming its holder; a user
without the state key plans but cannot exec; PostgreSQL stopped in the middle of an apply is a
clear error that leaves no torn state, and the next apply converges; of two watchers the
standby heals a killed node after the leader is SIGKILLed. How fast the takeover is, is
measured in benchmarks/bench_team.py, not asserted here.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from local_topology import daemons_under
from postgres_server import PostgresServer
from watchers import Watcher, wait_until

from codebolt_topo.engine.backends import open_backend
from codebolt_topo.engine.operations import apply_topology
from codebolt_topo.engine.statekey import KEY_ENV, StateKey
from codebolt_topo.errors import StateError
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.state import Lifecycle
from codebolt_topo.testing import process_running

pytestmark = pytest.mark.slow

NODES = {"two": "{a: {}, b: {}}", "three": "{a: {}, b: {}, c: {}}"}


@dataclass
class User:
    """One developer: a directory of their own with the topology file, and their environment."""

    directory: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.directory / "topology.yaml"

    def write(self, nodes: str, extra: str = "") -> None:
        self.file.write_text(
            f"name: {self.name}\nbackend: {{type: postgres}}\n"
            f"heartbeat: {{interval: 1s, timeout: 2s}}\nnodes: {nodes}\nedges: [a -> b]\n{extra}"
        )

    def run(self, *args: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codebolt_topo.cli.main", *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            env={**os.environ, "CODEBOLT_BROKER": "0", **self.env},
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (
            f"{args}: {result.returncode}\n{result.stdout}{result.stderr}"
        )
        return result.stdout


@pytest.fixture
def team(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[User, User]]:
    """Alice and Bob, each in a directory of their own, on one topology in PostgreSQL; Bob has
    the state key Alice's first apply made (handed over as CODEBOLT_STATE_KEY)."""
    monkeypatch.setenv("CODEBOLT_PG_DSN", postgres.dsn)
    name = f"team{uuid.uuid4().hex[:8]}"  # one server for the session: a topology per test
    alice, bob = User(tmp_path / "alice", name), User(tmp_path / "bob", name)
    for user in (alice, bob):
        user.directory.mkdir()
        user.write(NODES["two"])
    yield alice, bob
    alice.run("destroy", "--auto-approve", "--discard-history")
    assert daemons_under(tmp_path) == []


def _hand_over_key(alice: User, bob: User) -> str:
    key_file = alice.directory / ".codebolt" / f"{alice.name}.key"
    key = StateKey.parse(key_file.read_text(), str(key_file))
    bob.env[KEY_ENV] = key.secret.decode()
    return key.key_id


def _waiting_at_the_prompt(user: User, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """``codebolt apply`` on a terminal, stopped at its question (holding the lock)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", "apply", *args],
        cwd=user.directory,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **user.env},
    )
    os.close(terminal)
    seen = b""
    assert process.stdout is not None
    while b"Only 'yes' will be accepted" not in seen:
        chunk = process.stdout.read1(4096)
        assert chunk, f"apply ended before asking: {seen.decode()}"
        seen += chunk
    return process, controller


def test_two_users_plan_apply_and_exec_and_take_turns(team: tuple[User, User]) -> None:
    alice, bob = team
    assert "Plan: 2 to create" in alice.ok("plan")
    assert "Plan: 2 to create" in bob.ok("plan")
    assert "Apply complete: 2 change(s)." in alice.ok("apply", "--auto-approve")
    key_id = _hand_over_key(alice, bob)
    assert "No changes." in bob.ok("plan")
    assert alice.ok("exec", "b", "--", "echo", "from alice") == "from alice\n"
    assert bob.ok("exec", "b", "--", "echo", "from bob") == "from bob\n"

    # Alice's apply waits at its question, holding the lock: Bob's is refused, naming her run.
    alice.write(NODES["three"])
    bob.write(NODES["three"])
    waiting, controller = _waiting_at_the_prompt(alice)
    try:
        refused = bob.run("apply", "--auto-approve")
        assert refused.returncode == 1
        holder = re.search(r"is locked by apply \(pid (\d+) on ", refused.stderr)
        assert holder is not None, refused.stderr
        assert int(holder[1]) == waiting.pid
        os.write(controller, b"no\n")
        assert waiting.wait(60) == 1  # declined: nothing changed
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        os.close(controller)
        assert waiting.stdout is not None
        waiting.stdout.close()
    assert "Apply complete: 1 change(s)." in bob.ok("apply", "--auto-approve")
    assert "No changes." in alice.ok("plan")
    assert bob.ok("exec", "c", "--", "echo", "c runs") == "c runs\n"

    # Carol has the file but not the key: she plans, sees status, and cannot act as admin.
    carol = User(alice.directory.parent / "carol", alice.name)
    carol.directory.mkdir()
    carol.write(NODES["three"])
    assert "No changes." in carol.ok("plan")
    assert "RUNNING" in carol.ok("status")
    denied = carol.run("exec", "b", "--", "true")
    assert denied.returncode == 1
    assert denied.stderr.startswith(
        "error: cannot act as a node's admin: the tokens in the state are encrypted with state "
        f"key {key_id}, and this "
    )
    assert "CODEBOLT_STATE_KEY" in denied.stderr
    assert "plan, status and validate work without it" in denied.stderr


def test_postgres_stopped_mid_apply_leaves_no_torn_state(
    team: tuple[User, User], postgres: PostgresServer
) -> None:
    """The database stops while the second of four new nodes is being recorded: the apply
    fails with one clear error, the committed state is whole (every node it records runs), and
    once PostgreSQL is back the next apply converges with no duplicate daemon."""
    alice, _ = team
    alice.ok("apply", "--auto-approve")
    alice.write("{a: {}, b: {}, c: {}, d: {}, e: {}, f: {}}")
    stopped = threading.Event()

    def stop_on_the_second_start(message: str) -> None:
        if message.endswith(": starting (local)") and message[:1] in "de" and not stopped.is_set():
            stopped.set()
            postgres.stop("immediate")

    try:
        with pytest.raises(StateError) as caught:
            apply_topology(alice.file, progress=stop_on_the_second_start)
        assert stopped.is_set()
        message = str(caught.value)
        assert message.startswith("the state backend is unreachable while ")
        assert "Nothing was written past the last committed version" in message
        down = alice.run("plan")
        assert down.returncode == 1
        assert "error: the state backend is unreachable while connecting" in down.stderr
    finally:
        postgres.start()
    backend = open_backend(alice.file, alice.name, BackendSpec(type="postgres"))
    try:
        committed = backend.load()
        assert committed.serial == backend.versions()[-1].serial
        for node in committed.nodes.values():  # what it records is true, and whole
            assert node.lifecycle is not Lifecycle.RUNNING or process_running(
                int(node.handle["pid"])
            ), node
    finally:
        backend.close()
    converged = alice.ok("apply", "--auto-approve")
    assert "Apply complete" in converged
    assert alice.run("plan", "--detailed-exitcode").returncode == 0
    assert len(daemons_under(alice.directory)) == 6  # an orphan of the failed run removed
    assert alice.ok("exec", "f", "--", "echo", "converged") == "converged\n"


def test_the_standby_watcher_heals_after_the_leader_is_killed(team: tuple[User, User]) -> None:
    alice, bob = team
    alice.ok("apply", "--auto-approve")
    _hand_over_key(alice, bob)
    first = Watcher(alice.directory)
    first.wait_for("leading the watch")
    second = Watcher(bob.directory, env=bob.env)
    try:
        second.wait_for(r"standing by: the watch is led by .* term 1")
        victim = int(
            open_backend(alice.file, alice.name, BackendSpec(type="postgres"))
            .load(sealed_ok=True)
            .nodes["b"]
            .handle["pid"]
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        second.wait_for(r"leading the watch \(lease term 2")
        second.wait_for("b: replaced")
        healed = time.monotonic() - killed_at
        status = bob.ok("status", "--json")
        assert status.count('"RUNNING"') == 2, status
        wait_until(lambda: not process_running(victim), 10, "the killed daemon to be reaped")
        print(f"standby led and healed b {healed:.2f} s after the leader's SIGKILL")
    finally:
        first.close()
        second.close()
