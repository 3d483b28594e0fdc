"""The diff is pure: desired nodes + recorded state + observations in, actions out."""

from __future__ import annotations

import json

from codebolt_topo.model.observation import Observation
from codebolt_topo.model.state import NodeState, State
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.desired import DesiredNode
from codebolt_topo.plan.diff import ActionKind, destroy_plan, diff
from codebolt_topo.plan.reasons import Reason
from codebolt_topo.plan.render import plan_as_json, plan_as_text


def _desired(
    name: str, peers: tuple[str, ...] = (), inbound: tuple[str, ...] = (), **spec: object
) -> DesiredNode:
    plugins = {"remote-execution": {}} if inbound else {}
    return DesiredNode(
        name=name,
        spec=NodeSpec.model_validate(spec),
        workspace=None,
        peers=peers,
        inbound=inbound,
        routes={peer: [peer] for peer in peers},
        plugins=plugins,
    )


def _recorded(want: DesiredNode) -> NodeState:
    """A node as apply would have left it for ``want``."""
    return NodeState(
        name=want.name,
        provider=want.spec.provider,
        admin_token="t",
        launch=want.launch_settings,
        launch_hash=want.launch_hash,
        runtime_hash="r",
        wiring=json.loads(json.dumps(want.wiring)),
        handle={"pid": 1},
    )


def _chain() -> dict[str, DesiredNode]:
    return {"a": _desired("a", peers=("b",)), "b": _desired("b", inbound=("a",))}


def _state(desired: dict[str, DesiredNode]) -> State:
    return State(topology="demo", nodes={n: _recorded(d) for n, d in desired.items()})


ALIVE = Observation(alive=True)


def test_fresh_topology_creates_every_node() -> None:
    plan = diff(_chain(), State(topology="demo"), {})
    assert [(a.kind, a.node) for a in plan.actions] == [
        (ActionKind.CREATE, "a"),
        (ActionKind.CREATE, "b"),
    ]
    text = plan_as_text(plan)
    assert "+ a" in text
    assert "gateway: remote-execution (accepts work from a)" in text
    assert "Plan: 2 to create, 0 to update, 0 to replace, 0 to destroy." in text


def test_applied_topology_has_no_changes() -> None:
    desired = _chain()
    plan = diff(desired, _state(desired), {"a": ALIVE, "b": ALIVE})
    assert not plan.has_changes
    assert "No changes" in plan_as_text(plan)


def test_added_node_creates_it_and_rewires_only_its_neighbour() -> None:
    before = _chain()
    after = {
        **before,
        "b": _desired("b", peers=("c",), inbound=("a",)),
        "c": _desired("c", inbound=("b",)),
    }
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    kinds = {a.node: a.kind for a in plan.actions}
    assert kinds == {"c": ActionKind.CREATE, "b": ActionKind.UPDATE}
    update = next(a for a in plan.actions if a.node == "b")
    assert "peers +c" in update.messages


def test_removed_node_is_deleted_and_its_source_rewired() -> None:
    before = _chain()
    after = {"a": _desired("a")}
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    assert [(a.kind, a.node) for a in plan.actions] == [
        (ActionKind.UPDATE, "a"),
        (ActionKind.DELETE, "b"),
    ]
    assert plan.actions[0].messages == ("peers -b",)


def test_launch_setting_change_replaces_with_the_reason() -> None:
    before = _chain()
    after = {**before, "b": _desired("b", inbound=("a",), port=4100)}
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    replace = next(a for a in plan.actions if a.kind is ActionKind.REPLACE)
    assert replace.node == "b"
    assert replace.messages == ("port: (none) -> 4100",)
    update = next(a for a in plan.actions if a.kind is ActionKind.UPDATE)
    assert update.node == "a"
    assert update.messages == ("peer endpoint changes: b",)


def test_node_killed_out_of_band_shows_as_replace_with_drift_reason() -> None:
    desired = _chain()
    dead = Observation(alive=False, reason="process 1234 is gone")
    plan = diff(desired, _state(desired), {"a": ALIVE, "b": dead})
    assert (plan.actions[0].kind, plan.actions[0].node, plan.actions[0].messages) == (
        ActionKind.REPLACE,
        "b",
        ("drift: process 1234 is gone",),
    )
    assert "-/+ b" in plan_as_text(plan)


def test_disabling_the_gateway_is_an_in_place_update() -> None:
    before = _chain()
    after = {
        **before,
        "b": DesiredNode(
            name="b",
            spec=NodeSpec(),
            workspace=None,
            peers=(),
            inbound=("a",),
            routes={},
            plugins={},
        ),
    }
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    assert [(a.kind, a.node, a.messages) for a in plan.actions] == [
        (ActionKind.UPDATE, "b", ("plugins -remote-execution",)),
    ]


def test_destroy_plan_and_json_rendering() -> None:
    desired = _chain()
    plan = destroy_plan(_state(desired))
    assert [(a.kind, a.node) for a in plan.actions] == [
        (ActionKind.DELETE, "a"),
        (ActionKind.DELETE, "b"),
    ]
    document = plan_as_json(diff(desired, State(topology="demo"), {}))
    assert document["changes"] is True
    assert document["nodes"]["b"]["gateway"] == "active"
    assert document["nodes"]["a"]["gateway"] == "inactive"
    assert [a["action"] for a in document["actions"]] == ["create", "create"]


def test_a_plan_prints_as_a_summary_not_its_every_action() -> None:
    """asyncio formats a finished task's result (a plan) when asyncio.run restores its SIGINT
    handler: printed whole, a 10,000-node plan cost 0.6 s of every ``codebolt plan``."""
    from codebolt_topo.plan.diff import Action, ActionKind, Plan

    actions = tuple(Action(ActionKind.CREATE, f"n{i}", "local") for i in range(5000))
    actions += (Action(ActionKind.DELETE, "old", "local"),)
    assert repr(Plan("big", actions)) == "Plan('big': 5001 actions: 5000 create, 1 delete)"


def test_text_shows_every_kind_terraform_style_with_its_reasons() -> None:
    """Issue 2: ``+`` create, ``~`` update in place, ``-/+`` replace, ``-`` destroy, each
    followed by why, and a summary line."""
    before = {
        "a": _desired("a", peers=("b", "c", "d")),
        "b": _desired("b", inbound=("a",)),
        "c": _desired("c", inbound=("a",)),
        "d": _desired("d", inbound=("a",)),
    }
    after = {
        "a": _desired("a", peers=("b", "c", "e")),
        "b": DesiredNode(
            name="b",
            spec=NodeSpec(),
            workspace=None,
            peers=(),
            inbound=("a",),
            routes={},
            plugins={},
        ),
        "c": _desired("c", inbound=("a",), env={"X": "1"}),
        "e": _desired("e", inbound=("a",)),
    }
    text = plan_as_text(diff(after, _state(before), {n: ALIVE for n in before}))
    assert text.splitlines()[2:] == [
        "    + e  (local) create",
        "        gateway: remote-execution (accepts work from a)",
        "  -/+ c  (local) replace",
        "        env.X: (none) -> (sensitive)",
        "        gateway: remote-execution (accepts work from a)",
        "    ~ a  (local) update in place",
        "        peers +e -d",
        "        peer endpoint changes: c",
        "    ~ b  (local) update in place",
        "        plugins -remote-execution",
        "    - d  (local) destroy",
        "        removed from the topology file",
        "",
        "Plan: 1 to create, 2 to update, 1 to replace, 1 to destroy.",
    ]


def test_reasons_are_structured_where_the_planner_compares_them() -> None:
    """Issue 17, item 3: each reason carries its field, before and after (no prose to parse
    back), and ``env`` values are marked sensitive, one reason per variable."""
    before = _chain()
    after = {
        "a": _desired("a", peers=("b", "c")),
        "b": _desired("b", inbound=("a",), port=4100, env={"KEY": "k1"}),
        "c": _desired("c", inbound=("a",)),
    }
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    by_node = {action.node: action for action in plan.actions}
    assert by_node["b"].reasons == (
        Reason("port", None, 4100, "port: (none) -> 4100"),
        Reason("env.KEY", None, "k1", "env.KEY: (none) -> 'k1'", sensitive=True),
    )
    peers = next(r for r in by_node["a"].reasons if r.field == "peers")
    assert (peers.before, peers.after, peers.message) == (["b"], ["b", "c"], "peers +c")
    assert by_node["a"].reasons[-1] == Reason(
        "peers.endpoint", None, ["b"], "peer endpoint changes: b"
    )


def test_renderers_mask_sensitive_values_unless_asked() -> None:
    before = _chain()
    after = {**before, "b": _desired("b", inbound=("a",), env={"KEY": "k1"})}
    plan = diff(after, _state(before), {"a": ALIVE, "b": ALIVE})
    assert "env.KEY: (none) -> (sensitive)" in plan_as_text(plan)
    assert "k1" not in plan_as_text(plan)
    assert "env.KEY: (none) -> 'k1'" in plan_as_text(plan, show_sensitive=True)
    [masked] = plan_as_json(plan)["actions"][0]["reasons"]
    assert masked == {
        "field": "env.KEY",
        "before": None,
        "after": "(sensitive)",
        "message": "env.KEY: (none) -> (sensitive)",
    }
    [shown] = plan_as_json(plan, show_sensitive=True)["actions"][0]["reasons"]
    assert (shown["after"], shown["message"]) == ("k1", "env.KEY: (none) -> 'k1'")
    assert plan.masked().actions[0].messages == ("env.KEY: (none) -> (sensitive)",)
    assert plan.actions[0].messages == ("env.KEY: (none) -> 'k1'",)
