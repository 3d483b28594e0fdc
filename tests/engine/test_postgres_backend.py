"""The PostgreSQL state backend against a real server: Terraform's pg semantics.

A lock that names its holder and dies with its connection, lineage and serial checked in the
write's transaction, every version kept, force-unlock that stops the holder from writing,
migration to and from the file backend, and the watch lease with its fencing term.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer

from codebolt_topo.engine.backends import open_backend
from codebolt_topo.engine.backends.migrate import migrate_state
from codebolt_topo.engine.backends.postgres import PostgresBackend
from codebolt_topo.engine.lease import LeaseLostError
from codebolt_topo.engine.statefile import StateFile
from codebolt_topo.errors import LockError, StateError
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.plan.validate import validate_file

SPEC = BackendSpec(type="postgres")


@pytest.fixture
def dsn(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CODEBOLT_PG_DSN", postgres.dsn)
    return postgres.dsn


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"  # one server for the session: a topology per test


def _backend(tmp_path: Path, name: str) -> PostgresBackend:
    backend = open_backend(tmp_path / "topology.yaml", name, SPEC)
    assert isinstance(backend, PostgresBackend)
    return backend


def _with_node(state: State, node: str, token: str = "secret") -> State:
    state.nodes[node] = NodeState(name=node, provider="local", admin_token=token, launch_hash="h")
    return state


def test_versions_are_kept_and_tokens_sealed_in_the_database(
    tmp_path: Path, dsn: str, name: str
) -> None:
    backend = _backend(tmp_path, name)
    assert not backend.exists()
    state = _with_node(backend.load(), "a")
    with backend.locked("apply"):
        backend.save(state)
        _with_node(state, "b")
        backend.save(state)
    assert backend.load().serial == 2
    assert sorted(backend.load().nodes) == ["a", "b"]
    versions = backend.versions()
    assert [(v.serial, v.nodes) for v in versions] == [(1, 1), (2, 2)]
    assert list(backend.load_version(1).nodes) == ["a"]
    with pytest.raises(StateError, match="no version 7"):
        backend.load_version(7)
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(
            "SELECT string_agg(document, '') FROM codebolt.state_versions WHERE topology = %s",
            (name,),
        ).fetchone()
    assert stored is not None
    assert "secret" not in stored[0]


_HOLD = """
import sys
from pathlib import Path
from codebolt_topo.engine.backends import open_backend
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.state import State
backend = open_backend(Path(sys.argv[1]), sys.argv[2], BackendSpec(type="postgres"))
with backend.locked("apply"):
    print("held", flush=True)
    sys.stdin.readline()
    state = backend.load()
    try:
        backend.save(state)
        print("wrote", flush=True)
    except Exception as error:
        print(f"refused: {error}", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path, dsn: str, name: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "topology.yaml"), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "held\n"
    with process:  # closes its pipes
        yield process
        process.kill()


def test_the_lock_names_its_holder_and_dies_with_its_connection(
    tmp_path: Path, name: str, holder: subprocess.Popen[str]
) -> None:
    backend = _backend(tmp_path, name)
    with pytest.raises(LockError) as caught, backend.locked("apply"):
        pass
    message = str(caught.value)
    assert f"topology {name} is locked by apply (pid {holder.pid} on " in message
    assert "lock id " in message
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with backend.locked("apply", timeout=30):  # released by the server: no force-unlock
        pass


def test_force_unlock_stops_the_holder_from_writing(
    tmp_path: Path, name: str, holder: subprocess.Popen[str]
) -> None:
    backend = _backend(tmp_path, name)
    with pytest.raises(LockError) as caught, backend.locked("apply"):
        pass
    lock_id = str(caught.value).split("lock id ")[1].split(")")[0]
    with pytest.raises(LockError, match="does not match"):
        backend.force_unlock("0" * 32)
    assert f"pid {holder.pid}" in backend.force_unlock(lock_id)
    assert holder.stdin is not None
    assert holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().startswith("refused: the state backend is unreachable")
    with backend.locked("apply", timeout=10):
        pass


def test_a_write_from_a_stale_load_is_refused(tmp_path: Path, name: str, dsn: str) -> None:
    first, second = _backend(tmp_path, name), _backend(tmp_path, name)
    stale = _with_node(first.load(), "a")
    with first.locked("apply"):
        first.save(stale)
    old = second.load()
    with first.locked("apply"):
        first.save(stale)
    with second.locked("apply"), pytest.raises(StateError, match="moved under us"):
        second.save(old)
    assert first.load().serial == 2


def test_a_database_gone_mid_write_is_a_clear_error(
    tmp_path: Path, name: str, dsn: str, postgres: PostgresServer
) -> None:
    backend = _backend(tmp_path, name)
    state = _with_node(backend.load(), "a")
    try:
        with backend.locked("apply"):
            backend.save(state)
            postgres.stop("immediate")
            with pytest.raises(StateError) as caught:
                backend.save(state)
    finally:
        postgres.start()
    message = str(caught.value)
    assert "the state backend is unreachable while writing the state" in message
    assert "Nothing was written past the last committed version" in message
    assert "password" not in message
    assert _backend(tmp_path, name).load().serial == 1


def test_migrate_to_postgres_and_back(tmp_path: Path, name: str, dsn: str) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(f"name: {name}\nnodes: {{a: {{}}}}\n")
    topology = validate_file(path).topology
    local = StateFile(tmp_path / ".codebolt", name)
    state = _with_node(local.load(), "a")
    with local.locked("apply"):
        local.save(state)
        local.save(state)
    report = migrate_state(path, topology, "postgres")
    assert (report.versions, report.serial) == (1, 2)
    assert not local.path.exists()
    with pytest.raises(StateError, match="was migrated to another backend"):
        StateFile(tmp_path / ".codebolt", name).load()
    remote = _backend(tmp_path, name)
    assert remote.load().nodes["a"].admin_token == "secret"
    with remote.locked("apply"):
        remote.save(remote.load())
    moved = topology.model_copy(update={"backend": SPEC})
    back = migrate_state(path, moved, "file")
    assert (back.versions, back.serial) == (2, 3)
    assert StateFile(tmp_path / ".codebolt", name).load().serial == 3
    with pytest.raises(StateError, match="never merges two histories"):
        migrate_state(path, moved, "file")


def test_the_watch_lease_has_one_holder_and_fences_its_writes(
    tmp_path: Path, name: str, dsn: str
) -> None:
    backend = _backend(tmp_path, name)
    leases = backend.leases()
    first = leases.acquire("w1", ttl=0.5)
    assert first is not None
    assert first.term == 1
    assert leases.acquire("w2", ttl=0.5) is None
    assert leases.renew(first)
    backend.fence(first)
    with backend.locked("watch"):
        backend.save(backend.load())
    deadline = time.monotonic() + 30
    second = None
    while second is None and time.monotonic() < deadline:
        time.sleep(0.1)
        second = leases.acquire("w2", ttl=30)
    assert second is not None
    assert second.term == 2
    assert not leases.renew(first)
    with backend.locked("watch"), pytest.raises(LeaseLostError, match="term 1 is over"):
        backend.save(backend.load())
    backend.fence(second)
    with backend.locked("watch"):
        backend.save(backend.load())
    assert json.loads(json.dumps(backend.load().serial)) == 2
    assert os.environ["CODEBOLT_PG_DSN"] == dsn
