"""Issue 14, item 1: ``dial: sender | receiver | auto`` on an edge, located like every other
setting when it is wrong."""

from __future__ import annotations

import json

from test_validate import errors, validate

from codebolt_topo.model.state import NodeState, State
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import diff
from codebolt_topo.plan.render import plan_as_json, plan_as_text
from codebolt_topo.plan.shapes import expand_edges


def test_dial_is_carried_to_the_expanded_edge_and_defaults_to_auto() -> None:
    validated = validate("""
        name: t
        nodes: {hub: {}, lap: {}, w: {}}
        edges:
          - hub -> w
          - {from: hub, to: lap, dial: receiver}
          - {from: w, to: lap, dial: sender}
    """)
    dials = {(e.source, e.target): e.dial for e in validated.edges}
    assert dials == {("hub", "w"): "auto", ("hub", "lap"): "receiver", ("w", "lap"): "sender"}


def test_a_repeat_names_the_dial_of_a_shorthand_edge() -> None:
    validated = validate("""
        name: t
        nodes: {a: {}, b: {}}
        edges: [a -> b, {from: a, to: b, dial: receiver, sync: push}]
    """)
    assert [(e.dial, e.sync) for e in expand_edges(validated.topology)] == [("receiver", "push")]


def test_an_unknown_dial_is_refused_at_its_line() -> None:
    (message,) = errors("""
        name: t
        nodes: {a: {}, b: {}}
        edges:
          - {from: a, to: b, dial: recever}
    """)
    assert message.startswith("topology.yaml:4:")
    assert "edges[0].dial" in message
    assert "'sender', 'receiver' or 'auto'" in message


def test_two_explicit_dials_of_one_edge_conflict_at_the_second() -> None:
    assert errors("""
        name: t
        nodes: {a: {}, b: {}}
        edges:
          - {from: a, to: b, dial: receiver}
          - {from: a, to: b, dial: sender}
    """) == [
        "topology.yaml:5:28: edges[1].dial: edge a -> b says dial: sender, but edges[0] says "
        "dial: receiver; hint: keep one"
    ]


def test_the_plan_says_which_peer_dials_in() -> None:
    validated = validate("""
        name: t
        nodes: {hub: {}, lap: {}, w: {}}
        edges: [hub -> w, {from: hub, to: lap, dial: receiver}]
    """)
    plan = diff(desired_nodes(validated), State(topology="t"), {})
    assert "sends work to: lap (lap dials in), w" in plan_as_text(plan)
    nodes = plan_as_json(plan)["nodes"]
    assert nodes["hub"]["dials"] == {"lap": "receiver"}
    assert "dials" not in nodes["w"]


def test_changing_an_edges_dial_rewires_both_ends() -> None:
    before = desired_nodes(validate("name: t\nnodes: {hub: {}, lap: {}}\nedges: [hub -> lap]\n"))
    state = State(
        topology="t",
        nodes={
            name: NodeState(
                name=name,
                provider="local",
                admin_token="t",
                launch=want.launch_settings,
                launch_hash=want.launch_hash,
                runtime_hash="r",
                wiring=json.loads(json.dumps(want.wiring)),
                handle={"pid": 1},
            )
            for name, want in before.items()
        },
    )
    assert not diff(before, state, {}).has_changes  # no dial written: wiring as before dial
    after = validate("""
        name: t
        nodes: {hub: {}, lap: {}}
        edges: [{from: hub, to: lap, dial: receiver}]
    """)
    plan = diff(desired_nodes(after), state, {})
    assert {a.node: a.messages for a in plan.actions} == {
        "hub": ("dial of hub -> lap: auto -> receiver",),
        "lap": ("dial of hub -> lap: auto -> receiver",),
    }


def test_a_node_here_may_dial_a_container_but_a_sandbox_still_sends_it_nothing() -> None:
    """A container cannot reach a node on this machine's loopback, but that node can dial the
    container (dial: receiver); a sandbox stays fenced off this machine whoever dials."""
    assert errors("""
        name: t
        nodes:
          box: {provider: docker}
          jail: {provider: docker, sandbox: true}
          home: {}
        edges:
          - {from: box, to: home, dial: receiver}
          - {from: jail, to: home, dial: receiver}
    """) == [
        "topology.yaml:8:5: edges[1]: edge jail -> home: sandbox node 'jail' cannot send work "
        "to a node on this machine (its network reaches only the topology's containers); "
        "reverse the edge or make the target a docker node"
    ]
