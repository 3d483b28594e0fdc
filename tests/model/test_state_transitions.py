"""Issue 17, item 7: a lifecycle transition carries why the node moved, and state files written
before transitions had reasons still load."""

from __future__ import annotations

import json

import pytest

from codebolt_topo.model.state import REASON_LIMIT, Lifecycle, NodeState, State

pytestmark = pytest.mark.core

OLD_STATE = {
    "version": 1,
    "lineage": "0" * 32,
    "serial": 3,
    "topology": "old",
    "nodes": {
        "a": {
            "name": "a",
            "provider": "local",
            "lifecycle": "RUNNING",
            "history": [
                {"state": "STARTING", "at": 1.0},
                {"state": "RUNNING", "at": 2.0},
            ],
            "admin_token": "t",
            "launch_hash": "h",
        }
    },
}


def test_a_state_file_without_reasons_still_loads() -> None:
    state = State.model_validate_json(json.dumps(OLD_STATE))
    assert [(t.state, t.reason) for t in state.nodes["a"].history] == [
        (Lifecycle.STARTING, None),
        (Lifecycle.RUNNING, None),
    ]


def test_a_move_records_its_reason_and_keeps_long_ones_bounded() -> None:
    node = NodeState(name="a", provider="local", admin_token="t", launch_hash="h")
    node.move_to(Lifecycle.STARTING, "provider local")
    node.move_to(Lifecycle.FAILED, "bind: address already in use\n" + "x" * 5000)
    node.move_to(Lifecycle.STARTING)
    starting, failed, again = node.history
    assert starting.reason == "provider local"
    assert failed.reason is not None
    assert failed.reason.startswith("bind: address already in use")
    assert len(failed.reason) == REASON_LIMIT
    assert again.reason is None
    loaded = NodeState.model_validate_json(node.model_dump_json())
    assert loaded.history == node.history
