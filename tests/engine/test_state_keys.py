"""Tokens at rest: sealed with the operator's key in every stored state, opened only with it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebolt_topo.engine.rekey import rotate_key
from codebolt_topo.engine.statefile import StateFile, atomic_write
from codebolt_topo.engine.statekey import (
    KEY_ENV,
    MissingKeyError,
    StateKey,
    forget_environment_key,
    is_sealed,
)
from codebolt_topo.model.state import NodeState, State


@pytest.fixture(autouse=True)
def _no_environment_key() -> Iterator[None]:
    forget_environment_key()
    yield
    forget_environment_key()


def _written(directory: Path, token: str = "admin-secret") -> StateFile:
    state_file = StateFile(directory, "demo")
    state = state_file.load()
    state.nodes["a"] = NodeState(name="a", provider="local", admin_token=token, launch_hash="h")
    state.edge_tokens["a->b"] = "edge-secret"
    with state_file.locked("apply"):
        state_file.save(state)
    return state_file


def test_a_stored_state_holds_no_usable_token(tmp_path: Path) -> None:
    state_file = _written(tmp_path)
    stored = state_file.path.read_text()
    assert "admin-secret" not in stored
    assert "edge-secret" not in stored
    document = json.loads(stored)
    assert is_sealed(document["nodes"]["a"]["admin_token"])
    key_file = tmp_path / "demo.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert state_file.keyring.generated == key_file
    reloaded = StateFile(tmp_path, "demo").load()
    assert reloaded.nodes["a"].admin_token == "admin-secret"
    assert reloaded.edge_tokens == {"a->b": "edge-secret"}


def test_without_the_key_the_state_plans_but_cannot_act(tmp_path: Path) -> None:
    _written(tmp_path)
    key_id = StateKey.parse((tmp_path / "demo.key").read_text(), "k").key_id
    (tmp_path / "demo.key").rename(tmp_path / "elsewhere.key")
    state_file = StateFile(tmp_path, "demo")
    sealed = state_file.load(sealed_ok=True)
    assert sealed.nodes["a"].provider == "local"
    assert is_sealed(sealed.nodes["a"].admin_token)
    with pytest.raises(MissingKeyError) as caught:
        state_file.load()
    message = str(caught.value)
    assert f"encrypted with state key {key_id}" in message
    assert "CODEBOLT_STATE_KEY" in message
    assert str(tmp_path / "demo.key") in message


def test_a_key_from_the_environment_leaves_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = StateKey.generate("test")
    monkeypatch.setenv(KEY_ENV, key.secret.decode())
    state_file = _written(tmp_path)
    assert KEY_ENV not in os.environ  # a daemon started from here cannot inherit it
    assert not (tmp_path / "demo.key").exists()  # nothing generated: the operator's key used
    stored = json.loads(state_file.path.read_text())
    assert key.key_id in stored["nodes"]["a"]["admin_token"]
    assert StateFile(tmp_path, "demo").load().nodes["a"].admin_token == "admin-secret"


def test_a_state_written_before_sealing_is_sealed_at_its_next_write(tmp_path: Path) -> None:
    legacy = State(topology="demo")
    legacy.nodes["a"] = NodeState(name="a", provider="local", admin_token="old", launch_hash="h")
    atomic_write(tmp_path / "demo.state.json", legacy.model_dump_json().encode())
    state_file = StateFile(tmp_path, "demo")
    state = state_file.load()
    assert state.nodes["a"].admin_token == "old"
    with state_file.locked("apply"):
        state_file.save(state)
    assert "old" not in json.loads(state_file.path.read_text())["nodes"]["a"]["admin_token"]


def test_rotation_reseals_under_the_lock_and_the_old_key_no_longer_opens(tmp_path: Path) -> None:
    _written(tmp_path)
    old = StateKey.parse((tmp_path / "demo.key").read_text(), "old")
    report = rotate_key(StateFile(tmp_path, "demo"))
    assert report.old == [old.key_id]
    assert report.new != old.key_id
    assert report.kept_old is not None
    assert report.kept_old.exists()
    stored = json.loads((tmp_path / "demo.state.json").read_text())
    assert report.new in stored["nodes"]["a"]["admin_token"]
    assert StateFile(tmp_path, "demo").load().nodes["a"].admin_token == "admin-secret"
    (tmp_path / "demo.key").unlink()  # only the old key is left here
    with pytest.raises(MissingKeyError, match=f"state key {report.new}"):
        StateFile(tmp_path, "demo").load()
