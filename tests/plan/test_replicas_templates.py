"""``count:`` replicas and Jinja2 templates, with errors that point at the written lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.model.state import State
from codebolt_topo.model.template import TEMPLATE_VARS
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import ActionKind, diff
from codebolt_topo.plan.validate import validate_file


def _write(tmp_path: Path, text: str, name: str = "topology.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_count_expands_nodes_and_edges(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: x\nnodes: {a: {}, worker: {count: 3}, db: {}}\nedges: [a -> worker, worker -> db]\n",
    )
    validated = validate_file(path)
    assert list(validated.topology.nodes) == ["a", "worker-1", "worker-2", "worker-3", "db"]
    assert sorted(map(str, validated.edges)) == sorted(
        [f"a -> worker-{i}" for i in (1, 2, 3)] + [f"worker-{i} -> db" for i in (1, 2, 3)]
    )
    assert validated.graph.routes()["a"]["db"] == ["worker-1", "worker-2", "worker-3"]


def test_scaling_a_count_plans_exactly_the_delta(tmp_path: Path) -> None:
    from codebolt_topo.model.state import NodeState

    path = _write(tmp_path, "name: x\nnodes: {a: {}, w: {count: 2}}\nedges: [a -> w]\n")
    before = desired_nodes(validate_file(path))
    state = State(
        topology="x",
        nodes={
            n: NodeState(
                name=n,
                provider="local",
                admin_token="t",
                launch=d.launch_settings,
                launch_hash=d.launch_hash,
                wiring=d.wiring,
                runtime_hash="r",
                handle={"pid": 1},
            )
            for n, d in before.items()
        },
    )
    path.write_text("name: x\nnodes: {a: {}, w: {count: 4}}\nedges: [a -> w]\n")
    plan = diff(desired_nodes(validate_file(path)), state, {})
    assert {(a.kind, a.node) for a in plan.actions} == {
        (ActionKind.CREATE, "w-3"),
        (ActionKind.CREATE, "w-4"),
        (ActionKind.UPDATE, "a"),
    }
    path.write_text("name: x\nnodes: {a: {}, w: {count: 1}}\nedges: [a -> w]\n")
    plan = diff(desired_nodes(validate_file(path)), state, {})
    assert {(a.kind, a.node) for a in plan.actions} == {
        (ActionKind.DELETE, "w-2"),
        (ActionKind.UPDATE, "a"),
    }


def test_replicas_cannot_share_a_fixed_local_port(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nnodes:\n  w: {count: 2, port: 4100}\n")
    with pytest.raises(TopologyError, match="2 replicas of 'w' on this machine cannot share port"):
        validate_file(path)


def test_template_renders_with_variables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        (
            "name: t\nnodes:\n  hub: {}\n{% for i in range(n) %}\n  w{{ i }}: {}\n{% endfor %}\n"
            "edges:\n{% for i in range(n) %}\n  - hub -> w{{ i }}\n{% endfor %}\n"
        ),
        "topology.yaml.j2",
    )
    token = TEMPLATE_VARS.set({"n": 3})
    try:
        validated = validate_file(path)
    finally:
        TEMPLATE_VARS.reset(token)
    assert list(validated.topology.nodes) == ["hub", "w0", "w1", "w2"]


def test_template_errors_point_at_template_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        (
            "name: t\nnodes:\n  a: {}\n{% for i in range(2) %}\n  w{{ i }}: {}\n{% endfor %}\n"
            "  b: {provder: local}\n"
        ),
    )
    with pytest.raises(TopologyError) as caught:
        validate_file(path)
    assert str(caught.value).startswith(f"{path}:7:")
    assert "unknown field 'provder'" in str(caught.value)

    undefined = _write(tmp_path, "name: t\nnodes:\n  a: {port: {{ port }}}\n", "u.yaml")
    with pytest.raises(TopologyError) as caught:
        validate_file(undefined)
    assert str(caught.value).startswith(f"{undefined}:3: template: 'port' is undefined")
