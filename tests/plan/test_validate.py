"""Graph-level checks: located, worded, all reported together, and shape mismatches explained."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.model.topology import ShapeKind, Topology
from codebolt_topo.plan.graph import TopologyGraph
from codebolt_topo.plan.shapes import expand_edges
from codebolt_topo.plan.validate import ValidatedTopology, shape_problem, validate_file


def validate(text: str) -> ValidatedTopology:
    return validate_file(
        Path("topology.yaml"), textwrap.dedent(text).lstrip("\n"), providers=["local", "docker"]
    )


def errors(text: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        validate(text)
    return [str(issue) for issue in caught.value.issues]


def test_valid_file_gives_graph_and_edges(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nnodes: {a: , b: }\nedges: ['a -> b']\n", encoding="utf-8")
    validated = validate_file(path)
    assert validated.topology.name == "t"
    assert validated.path == path
    assert str(validated.source_map.locate("edges[0]")) == f"{path}:3:9"
    assert [str(edge) for edge in validated.edges] == ["a -> b"]
    assert validated.graph.receivers() == ["b"]


def test_loader_errors_come_with_the_name_errors_of_well_formed_edges() -> None:
    """Issue 2: every error of a file at once, the loader's and the edges' together."""
    assert errors("name: t\nnodes: {a: {provder: x}}\nedges: ['a -> zz']\n") == [
        "topology.yaml:2:13: nodes.a.provder: unknown field 'provder' (did you mean 'provider'?)",
        "topology.yaml:3:9: edges[0]: unknown node 'zz' (declared nodes: a)",
    ]


def test_a_refused_file_reports_only_what_its_well_formed_parts_show() -> None:
    assert errors("""
        name: t
        entry: x
        nodes:
          trainer: {port: 0}
          worker: {}
        edges:
          - trainer - worker
          - {from: trainr, to: worker}
          - {fan-out: {root: worker, leaves: [worker, wrker]}}
          - {from: trainer}
          - tree: {trainer: {wroker: [zz]}}
    """) == [
        "topology.yaml:2:8: entry: unknown node 'x' (declared nodes: trainer, worker)",
        "topology.yaml:4:19: nodes.trainer.port: must be greater than or equal to 1, got 0",
        "topology.yaml:7:5: edges[0]: expected 'a -> b' or 'a <-> b', got 'trainer - worker'",
        "topology.yaml:8:12: edges[1].from: unknown node 'trainr' (did you mean 'trainer'?)",
        "topology.yaml:9:15: edges[2].fan-out: edge worker -> worker sends work to itself",
        "topology.yaml:9:47: edges[2].fan-out.leaves[1]: unknown node 'wrker' "
        "(did you mean 'worker'?)",
        "topology.yaml:10:5: edges[3]: missing required field 'to'",
        "topology.yaml:11:22: edges[4].tree.trainer.wroker: unknown node 'wroker' "
        "(did you mean 'worker'?)",
        "topology.yaml:11:31: edges[4].tree.trainer.wroker[0]: unknown node 'zz' "
        "(declared nodes: trainer, worker)",
    ]


def test_a_refused_file_is_not_checked_for_reach_shape_or_ports() -> None:
    """Those need the whole valid topology: a left-out edge would make a node look unreachable."""
    assert [
        issue.split(": ")[1]
        for issue in errors("""
        name: t
        shape: linear
        entry: a
        nodes: {a: {port: 4000}, b: {port: 4000, provder: local}, c: {}}
        edges: [a -> b, b - c]
    """)
    ] == ["nodes.b.provder", "edges[1]"]


def test_unknown_nodes_in_every_edge_form() -> None:
    assert errors("""
        name: t
        nodes: {trainer: , worker: }
        edges:
          - trainer -> wroker
          - {from: trainr, to: worker}
          - tree:
              trainer:
                wrker: [zz]
    """) == [
        "topology.yaml:4:5: edges[0]: unknown node 'wroker' (did you mean 'worker'?)",
        "topology.yaml:5:12: edges[1].from: unknown node 'trainr' (did you mean 'trainer'?)",
        "topology.yaml:8:9: edges[2].tree.trainer.wrker: unknown node 'wrker' "
        "(did you mean 'worker'?)",
        "topology.yaml:8:17: edges[2].tree.trainer.wrker[0]: unknown node 'zz' "
        "(declared nodes: trainer, worker)",
    ]


def test_self_loop() -> None:
    assert errors("name: t\nnodes: {a: , b: }\nedges: ['a -> b', {linear: [b, b]}]\n") == [
        "topology.yaml:3:28: edges[1].linear: edge b -> b sends work to itself"
    ]


def test_unknown_entry() -> None:
    assert errors("name: t\nentry: wroker\nnodes: {worker: , b: }\nedges: ['worker -> b']\n") == [
        "topology.yaml:2:8: entry: unknown node 'wroker' (did you mean 'worker'?)"
    ]


def test_unreachable_from_entry() -> None:
    assert errors("""
        name: t
        entry: a
        nodes:
          a:
          b:
          c:
          d:
        edges: ['a -> b', 'c -> d']
    """) == [
        "topology.yaml:6:3: nodes.c: node 'c' is unreachable from entry 'a'",
        "topology.yaml:7:3: nodes.d: node 'd' is unreachable from entry 'a'",
    ]


def test_local_port_clash_ignores_host() -> None:
    assert errors("""
        name: t
        nodes:
          a: {port: 4000}
          b: {port: 4000, host: 0.0.0.0}
          c: {port: 4001}
    """) == [
        "topology.yaml:4:13: nodes.b.port: port 4000 is already used by node 'a' "
        "(local nodes share one machine)"
    ]


def test_ports_published_on_this_machine_clash_too() -> None:
    # Docker publishes an explicit port on 127.0.0.1 here: it was accepted, then the engine
    # refused the second container at apply.
    found = errors(
        "name: t\nnodes:\n  a: {port: 3100, provider: docker}\n"
        "  b: {port: 3100, provider: docker}\n  c: {port: 3100}\n"
    )
    assert [issue.split(": ", 2)[1:] for issue in found] == [
        ["nodes.b.port", "port 3100 is already used by node 'a' (docker nodes share one machine)"],
        ["nodes.c.port", "port 3100 is already used by node 'a' (local nodes share one machine)"],
    ]


def test_ports_of_nodes_on_other_machines_do_not_clash() -> None:
    text = (
        "name: t\nnodes:\n  a: {port: 3100, provider: e2b}\n  b: {port: 3100, provider: e2b}\n"
        "  c: {port: 3100}\n"
    )
    validate_file(Path("topology.yaml"), text, providers=["local", "e2b"])


def test_all_graph_issues_at_once_sorted_by_line() -> None:
    found = errors("""
        name: t
        shape: linear
        nodes:
          a: {port: 1}
          b: {port: 1}
        edges:
          - a -> a
          - a -> zz
    """)
    assert [issue.split(": ")[0] for issue in found] == [
        "topology.yaml:5:13",
        "topology.yaml:7:5",
        "topology.yaml:8:5",
    ]


def test_declared_shape_mismatch_is_located_at_shape() -> None:
    assert errors("""
        name: t
        shape: tree
        nodes: {a: , b: , c: , d: }
        edges: ['a -> b', 'a -> c', 'b -> d', 'c -> d']
    """) == ["topology.yaml:2:8: shape: declared shape 'tree' but node 'd' has two parents (b, c)"]


def problem(shape: str, *edges: Any, nodes: str = "abcd") -> str | None:
    topology = Topology.model_validate(
        {"name": "t", "nodes": {name: {} for name in nodes}, "edges": list(edges)}
    )
    return shape_problem(TopologyGraph(topology, expand_edges(topology)), ShapeKind(shape))


@pytest.mark.parametrize(
    ("shape", "edges"),
    [
        ("linear", [{"linear": ["a", "b", "c", "d"]}]),
        ("linear", ["c -> a -> d -> b"]),
        ("fan-out", [{"fan-out": {"root": "b", "leaves": ["a", "c", "d"]}}]),
        ("tree", [{"tree": {"a": {"b": ["d"], "c": None}}}]),
        ("mesh", [{"mesh": ["a", "b", "c", "d"]}]),
        ("mesh", ["a <-> b <-> c <-> d"]),
        ("hub", [{"hub": {"hub": "a", "inbound": ["b", "c"], "outbound": ["d"]}}]),
        ("any", ["a -> a", "b -> c"]),
    ],
)
def test_shapes_that_match(shape: str, edges: list[Any]) -> None:
    assert problem(shape, *edges) is None


@pytest.mark.parametrize(
    ("shape", "edges", "expected"),
    [
        ("linear", ["a -> b -> c", "a -> d"], "node 'a' sends work to two nodes (b, d)"),
        ("linear", ["a -> c", "b -> c -> d"], "node 'c' has two parents (a, b)"),
        ("linear", ["a -> b", "c -> d"], "the nodes form two separate chains (starting at a, c)"),
        ("linear", ["a -> b -> c -> d -> a"], "the edges form a cycle (a -> b -> c -> d -> a)"),
        ("linear", ["a -> b", "c <-> d"], "node 'c' is not on the chain that starts at 'a'"),
        ("linear", [], "there are no edges"),
        (
            "fan-out",
            ["a -> b", "a -> c", "b -> d"],
            "two nodes send work (a, b); in a fan-out only the root does",
        ),
        ("fan-out", ["a -> b", "a -> c"], "root 'a' has no edge to d"),
        ("tree", ["a -> b", "c -> d"], "it has two roots (a, c); a tree has one"),
        ("tree", ["a -> b", "c <-> d"], "the edges form a cycle (c -> d -> c)"),
        ("tree", ["a -> b -> c -> d -> b"], "node 'b' has two parents (a, d)"),
        ("tree", ["a -> b -> c -> d -> a"], "the edges form a cycle (a -> b -> c -> d -> a)"),
        ("mesh", ["a <-> b <-> c", "c -> d"], "edge c -> d has no reverse edge d -> c"),
        ("mesh", ["a <-> b", "c <-> d"], "node 'a' cannot reach node 'c'"),
        ("hub", ["a -> b", "c -> d"], "no node is on every edge (a -> b and c -> d share no node)"),
        ("hub", ["a -> b -> c -> a"], "no node is on every edge"),
        (
            "hub",
            ["b -> a", "a -> b", "a -> c", "a -> d"],
            "node 'b' both sends work to and receives work from hub 'a'",
        ),
        ("hub", ["b -> a", "a -> c"], "node 'd' is not connected to hub 'a'"),
    ],
)
def test_shape_mismatches_explain_why(shape: str, edges: list[Any], expected: str) -> None:
    assert problem(shape, *edges) == expected


def test_single_node_matches_every_shape() -> None:
    for shape in ShapeKind:
        assert problem(shape.value, nodes="a") is None


def test_containers_cannot_send_work_to_unreachable_local_nodes() -> None:
    found = errors("""
        name: t
        nodes:
          box: {provider: docker}
          jail: {provider: docker, sandbox: true}
          home: {}
          open: {host: 0.0.0.0}
        edges: [box -> home, box -> open, jail -> open]
    """)
    assert found == [
        "topology.yaml:5:9: nodes.home.host: node 'home' listens on 127.0.0.1, which docker node "
        "'box' cannot reach (edge box -> home); set host: 0.0.0.0 (every connection still needs "
        "a token) or the Docker bridge's address, or let 'home' dial the container "
        "(dial: receiver)",
        "topology.yaml:7:35: edges[2]: edge jail -> open: sandbox node 'jail' cannot send work "
        "to a node on this machine (its network reaches only the topology's containers); "
        "reverse the edge or make the target a docker node",
    ]


@pytest.mark.parametrize("declared", ["", "shape: any\n"])
def test_cycles_outside_meshes_are_allowed(declared: str) -> None:
    """Issue 2: a cycle is not an error unless a declared shape rules it out; the routes
    (checked in test_graph) only ever step closer, so a request cannot loop on it."""
    validated = validate(
        f"name: t\n{declared}nodes: {{a: , b: , c: , d: }}\nedges: ['a -> b -> c -> a', 'c -> d']\n"
    )
    assert validated.graph.hops("a", "d") == 3
    assert validated.graph.routes()["b"]["a"] == ["c"]


def test_sandboxes_refuse_host_directory_mounts_at_the_line() -> None:
    found = errors("""
        name: t
        nodes:
          s:
            provider: docker
            sandbox: true
            volumes:
              - cache:/cache
              - /run:/hostrun:ro
              - ./data:/data
          box: {provider: docker, volumes: ["/run:/hostrun:ro"]}
    """)
    assert found == [
        "topology.yaml:8:9: nodes.s.volumes[1]: sandbox node 's' may not mount host directory "
        "'/run'; use a named volume (NAME:/path) or drop sandbox: true",
        "topology.yaml:9:9: nodes.s.volumes[2]: sandbox node 's' may not mount host directory "
        "'./data'; use a named volume (NAME:/path) or drop sandbox: true",
    ]


def test_an_edge_into_a_node_that_refuses_work_is_refused_at_the_edge() -> None:
    """Issue 17: ``x`` switched remote-execution off; an edge into it planned "sends work to: x"
    and every exec of x then failed with gateway-inactive. Every form of edge is located."""
    assert errors("""
        name: t
        nodes:
          a: {}
          b: {}
          x: {plugins: {remote-execution: false}}
        edges:
          - a -> b
          - {fan-out: {root: a, leaves: [x]}}
          - {from: b, to: x}
          - x -> a
    """) == [
        "topology.yaml:8:15: edges[1].fan-out: edge a -> x sends work to node 'x', which "
        "refuses work from peers (plugins: {remote-execution: false}); hint: drop the edge, or "
        "remove remote-execution: false from 'x' so it accepts the work",
        "topology.yaml:9:5: edges[2]: edge b -> x sends work to node 'x', which refuses work "
        "from peers (plugins: {remote-execution: false}); hint: drop the edge, or remove "
        "remote-execution: false from 'x' so it accepts the work",
    ]
    # sending work from it is fine, and so is a node with the gateway on explicitly
    validate("""
        name: t
        nodes:
          a: {}
          x: {plugins: {remote-execution: false}}
          y: {plugins: {remote-execution: true}}
        edges: [x -> a, a -> y]
    """)
