"""The state file: atomic, private, locked, and honest about who holds the lock."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from codebolt_topo.engine.statefile import StateFile, atomic_write
from codebolt_topo.errors import LockError, StateError
from codebolt_topo.model.state import Lifecycle, NodeState, State


def _node(name: str = "a") -> NodeState:
    return NodeState(name=name, provider="local", admin_token="secret", launch_hash="h")


def test_missing_file_loads_as_fresh_state(tmp_path: Path) -> None:
    state = StateFile(tmp_path, "demo").load()
    assert state.topology == "demo"
    assert state.serial == 0
    assert state.nodes == {}


def test_save_is_private_and_bumps_serial(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path / ".codebolt", "demo")
    state = state_file.load()
    state.nodes["a"] = _node()
    with state_file.locked("apply"):
        state_file.save(state)
        state_file.save(state)
    assert stat.S_IMODE(state_file.path.stat().st_mode) == 0o600
    reloaded = state_file.load()
    assert reloaded.serial == 2
    assert reloaded.lineage == state.lineage
    assert reloaded.nodes["a"].admin_token == "secret"
    assert [p.name for p in state_file.directory.iterdir() if p.name.endswith(".tmp")] == []


def test_save_without_lock_is_refused(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    with pytest.raises(StateError, match="without holding the lock"):
        state_file.save(state_file.load())


def test_state_of_another_topology_is_refused(tmp_path: Path) -> None:
    atomic_write(tmp_path / "demo.state.json", State(topology="other").model_dump_json().encode())
    with pytest.raises(StateError, match="belongs to topology 'other'"):
        StateFile(tmp_path, "demo").load()


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "demo.state.json").write_text("{not json")
    with pytest.raises(StateError, match="not a valid state file"):
        StateFile(tmp_path, "demo").load()


def _hold_lock(
    directory: str,
    ready: multiprocessing.synchronize.Event,
    release: multiprocessing.synchronize.Event,
) -> None:
    with StateFile(Path(directory), "demo").locked("apply"):
        ready.set()
        release.wait(10)


def test_second_writer_fails_naming_the_holder(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(LockError) as caught, StateFile(tmp_path, "demo").locked("destroy"):
            pass
        message = str(caught.value)
        assert f"pid {holder.pid}" in message
        assert "apply" in message
        assert "lock id" in message
    finally:
        release.set()
        holder.join(20)
    with StateFile(tmp_path, "demo").locked("destroy", timeout=1):
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(20)
    assert holder.pid is not None
    os.kill(holder.pid, 9)
    holder.join(20)
    with StateFile(tmp_path, "demo").locked("apply"):
        pass


def test_lifecycle_transitions_are_enforced_and_recorded() -> None:
    node = _node()
    node.move_to(Lifecycle.STARTING)
    node.move_to(Lifecycle.RUNNING)
    with pytest.raises(ValueError, match="illegal transition RUNNING -> STARTING"):
        node.move_to(Lifecycle.STARTING)
    node.move_to(Lifecycle.FAILED)
    assert [t.state for t in node.history] == [
        Lifecycle.STARTING,
        Lifecycle.RUNNING,
        Lifecycle.FAILED,
    ]


def test_force_unlock_needs_the_exact_id_and_stops_the_holder_writing(tmp_path: Path) -> None:
    holder = StateFile(tmp_path, "demo")
    other = StateFile(tmp_path, "demo")
    with holder.locked("apply"):
        lock_id = holder.lock_id
        assert lock_id is not None
        with pytest.raises(LockError, match="does not match"):
            other.force_unlock("wrong")
        assert "apply" in other.force_unlock(lock_id)
        with other.locked("apply"):  # the next run gets the lock at once
            other.save(other.load())
        with pytest.raises(LockError, match="force-unlocked"):
            holder.save(holder.load())
    assert other.load().serial == 1
    with pytest.raises(StateError, match="not locked"):
        other.force_unlock(lock_id)


def test_push_refuses_other_lineage_and_older_serial(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    state = state_file.load()
    with state_file.locked("apply"):
        state_file.save(state)
        state_file.save(state)
        assert state.serial == 2
        with pytest.raises(StateError, match="lineage"):
            state_file.push(State(topology="demo", serial=9))
        older = state.model_copy(update={"serial": 2})
        with pytest.raises(StateError, match="not newer"):
            state_file.push(older)
        newer = state.model_copy(update={"serial": 5})
        state_file.push(newer)
    assert state_file.load().serial == 5
