"""The loader's error messages: every form, located to the exact line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.model.loader import LoadedTopology, load_topology

PROVIDERS = ["docker", "local"]


@pytest.fixture(autouse=True, params=["c-parser", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with ruamel's C parser (the fast path, positions found lazily) and
    without it (as on a machine lacking ruamel.yaml.clib): both must say exactly the same."""
    from ruamel.yaml import main

    if request.param == "pure-python":
        monkeypatch.setattr(main, "CParser", None)
    elif main.CParser is None:
        pytest.fail("ruamel.yaml.clib is a dependency: its C parser must be importable")
    return str(request.param)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> LoadedTopology:
    return load_topology(write(tmp_path, text), providers=PROVIDERS)


def errors(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    """Issues as printed, with the file name relative so expectations read like the CLI."""
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as caught:
        load_topology(Path(path.name), path.read_text(), providers=PROVIDERS)
    return [str(issue) for issue in caught.value.issues]


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        name: demo
        nodes:
          a:
          b: {port: 4000}
        edges: ["a -> b"]
    """,
    )
    assert loaded.topology.name == "demo"
    assert loaded.topology.nodes["a"].provider == "local"
    assert loaded.topology.nodes["b"].port == 4000
    assert loaded.path == tmp_path / "topology.yaml"
    assert str(loaded.source_map.locate("nodes.b.port")) == f"{loaded.path}:4:13"


def test_unknown_provider_exact_form(tmp_path: Path) -> None:
    text = "# comment\n" * 9 + "name: t\nnodes:\n  trainer:\n    provider: dokcer\n"
    assert errors(tmp_path, text) == [
        "topology.yaml:13:15: nodes.trainer.provider: unknown provider 'dokcer' "
        "(did you mean 'docker'?)"
    ]


def test_unknown_provider_without_close_match_lists_installed(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nnodes:\n  a: {provider: zzz}\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(path, providers=["local"])
    assert caught.value.issues[0].message == "unknown provider 'zzz' (installed: local)"


def test_default_providers_come_from_the_registry(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nnodes:\n  a: {provider: locl}\n")
    with pytest.raises(TopologyError, match=r"unknown provider 'locl' \(did you mean 'local'\?\)"):
        load_topology(path)


def test_unknown_field_did_you_mean(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes:
          trainer:
            provder: local
    """,
    ) == [
        "topology.yaml:4:5: nodes.trainer.provder: unknown field 'provder' "
        "(did you mean 'provider'?)"
    ]


def test_unknown_top_level_field(tmp_path: Path) -> None:
    assert errors(tmp_path, "name: t\nnodez: {}\nnodes: {a: }\n") == [
        "topology.yaml:2:1: nodez: unknown field 'nodez' (did you mean 'nodes'?)"
    ]


def test_unknown_field_without_close_match_lists_fields(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes: {a: , b: }
        edges:
          - hub: {hub: a, inbound: [b], zz: 1}
    """,
    ) == [
        "topology.yaml:4:33: edges[0].hub.zz: unknown field 'zz' "
        "(expected one of: hub, inbound, outbound)"
    ]


def test_bad_edge_shorthand(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes: {a: , b: }
        edges:
          - a - b
    """,
    ) == ["topology.yaml:4:5: edges[0]: expected 'a -> b' or 'a <-> b', got 'a - b'"]


def test_invalid_node_name_points_at_the_key(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes:
          ok: {}
          Trainer!: {}
    """,
    ) == [
        "topology.yaml:4:3: nodes.Trainer!: invalid node name 'Trainer!': use lowercase "
        "letters, digits, '-' and '_', starting with a letter or digit, at most 63 "
        "characters"
    ]


def test_union_tags_are_stripped_from_paths(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        name: t
        nodes: {a: }
        edges:
          - {from: a, to: b}
          - fan-out: {root: a, leaves: [Bad]}
          - tree: {a: {b: [D], c: }}
    """,
    )
    assert found == [
        "topology.yaml:5:33: edges[1].fan-out.leaves[0]: invalid node name 'Bad': use "
        "lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 "
        "characters",
        "topology.yaml:6:20: edges[2].tree.a.b[0]: invalid node name 'D': use lowercase "
        "letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters",
    ]


def test_missing_field_points_at_its_mapping(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes: {a: }
        edges:
          - {from: a}
    """,
    ) == ["topology.yaml:4:5: edges[0]: missing required field 'to'"]


def test_missing_top_level_fields(tmp_path: Path) -> None:
    assert errors(tmp_path, "description: nothing else\n") == [
        "topology.yaml:1:1: missing required field 'name'",
        "topology.yaml:1:1: missing required field 'nodes'",
    ]


def test_misspelled_shape_key_in_edges(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes: {a: , b: }
        edges:
          - {linaer: [a, b]}
    """,
    ) == ["topology.yaml:4:5: edges[0]: unknown edge form 'linaer' (did you mean 'linear'?)"]


def test_two_shapes_in_one_edge_item(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes: {a: , b: }
        edges:
          - {linear: [a, b], mesh: [a, b]}
    """,
    ) == [
        "topology.yaml:4:22: edges[0].mesh: one shape per edge item: move 'mesh' into an "
        "item of its own"
    ]


def test_edge_item_of_wrong_type(tmp_path: Path) -> None:
    assert errors(tmp_path, "name: t\nnodes: {a: }\nedges: [5]\n") == [
        "topology.yaml:3:9: edges[0]: an edge is 'a -> b', {from: a, to: b}, or one of the "
        "shapes linear, fan-out, tree, mesh, hub; got the number 5"
    ]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("shape: tre", "shape: unknown shape 'tre' (did you mean 'tree'?)"),
        ("version: 2", "version: expected 1, got 2"),
        ("nodes: []", "nodes: expected a mapping, got a list"),
        ("edges: {a: b}", "edges: expected a list, got a mapping"),
        ("edges: [{linear: [a]}]", "edges[0].linear: needs at least 2 nodes, got 1"),
        ("nodes: {}", "nodes: at least one node is required"),
        ("nodes: {a: {port: 0}}", "nodes.a.port: must be greater than or equal to 1, got 0"),
        ("nodes: {a: {env: {'1x': y}}}", "nodes.a.env: invalid environment variable name '1x'"),
        (
            "nodes: {a: {plugins: {x: 5}}}",
            "nodes.a.plugins.x: a plugin setting is true, false, or a mapping of settings, "
            "got the number 5",
        ),
        (
            "nodes: {a: {capabilities: [GPU]}}",
            "nodes.a.capabilities[0]: invalid capability 'GPU': use lowercase letters, digits and "
            "'_.:-', starting with a letter or digit",
        ),
        (
            "name: Bad",
            "name: invalid topology name 'Bad': use lowercase letters, digits, '-' "
            "and '_', starting with a letter or digit, at most 63 characters",
        ),
        (
            "edges: [{tree: {a: 5}}]",
            "edges[0].tree.a: a tree child is a mapping (subtree), a list of leaf nodes, or empty "
            "(a leaf), got the number 5",
        ),
    ],
)
def test_message_forms(tmp_path: Path, snippet: str, expected: str) -> None:
    base = {"name": "name: t", "nodes": "nodes: {a: }"}
    key = snippet.split(":")[0]
    lines = [line for k, line in base.items() if k != key] + [snippet]
    found = errors(tmp_path, "\n".join(lines) + "\n")
    assert [issue.split(": ", 1)[1] for issue in found] == [expected]


def test_every_issue_is_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        name: t
        shape: tre
        nodes:
          a: {provder: local}
          b: {provider: dokcer}
        edges:
          - a - b
    """,
    )
    assert [issue.split(": ")[0] for issue in found] == [
        "topology.yaml:2:8",
        "topology.yaml:4:7",
        "topology.yaml:5:17",
        "topology.yaml:7:5",
    ]


def test_duplicate_node_names(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes:
          a: {}
          b: {}
          a: {port: 5}
          b: {}
    """,
    ) == [
        "topology.yaml:5:3: nodes.a: duplicate node name 'a' (first defined at line 3)",
        "topology.yaml:6:3: nodes.b: duplicate node name 'b' (first defined at line 4)",
    ]


def test_duplicate_keys_elsewhere(tmp_path: Path) -> None:
    assert errors(tmp_path, "name: t\nnodes:\n  a: {port: 1, port: 2}\nname: u\n") == [
        "topology.yaml:3:16: nodes.a.port: duplicate key 'port' (first defined at line 3)",
        "topology.yaml:4:1: name: duplicate key 'name' (first defined at line 1)",
    ]


def test_yaml_syntax_error_is_one_located_issue(tmp_path: Path) -> None:
    assert errors(tmp_path, "name: t\nnodes: a: b\n") == [
        "topology.yaml:2:9: invalid YAML: mapping values are not allowed here"
    ]


def test_tab_indentation(tmp_path: Path) -> None:
    [issue] = errors(tmp_path, "name: t\nnodes:\n\ta: {}\n")
    assert issue.startswith("topology.yaml:3:1: invalid YAML: found character '\\t'")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert errors(tmp_path, text) == [
        "topology.yaml:1:1: the file is empty; a topology needs at least 'name' and 'nodes'"
    ]


@pytest.mark.parametrize(("text", "kind"), [("- a\n", "a list"), ("just text\n", "a str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert errors(tmp_path, text) == [
        f"topology.yaml:1:1: expected a mapping with 'name' and 'nodes' at the top level, "
        f"got {kind}"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path / "missing.yaml")
    assert (
        str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    )


def test_location_uses_the_path_as_given(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(Path("sub/topo.yaml"), "name: t\nnodes: {A: }\n", providers=PROVIDERS)
    assert str(caught.value.issues[0].location) == "sub/topo.yaml:2:9"


def test_yaml_scalars_become_plain_python(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        name: t
        nodes:
          a:
            port: 0x1F90
            plugins: {remote-execution: true, x: {depth: 2}}
            env: {A: "1"}
    """,
    )
    spec = loaded.topology.nodes["a"]
    assert spec.port == 8080
    assert type(spec.port) is int
    assert spec.plugins == {"remote-execution": True, "x": {"depth": 2}}
    assert type(spec.plugins["x"]["depth"]) is int  # type: ignore[index]


def test_a_valid_file_is_parsed_once_and_positions_come_when_asked(
    tmp_path: Path, parser: str
) -> None:
    from codebolt_topo.model.source import LazySourceMap

    loaded = load(
        tmp_path,
        """
        name: t
        nodes:
          a: {}
          b: {port: 4000}
    """,
    )
    sources = loaded.source_map
    if parser == "c-parser":
        assert isinstance(sources, LazySourceMap)
        assert sources._build is not None, "positions were computed for a valid file"
    assert str(sources.locate("nodes.b.port")).endswith("topology.yaml:4:13")
    assert str(sources.locate("nodes.b.port", key=True)).endswith("topology.yaml:4:7")


def test_keys_that_meet_as_strings_are_duplicates(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        """
        name: t
        nodes:
          1: {}
          "1": {}
    """,
    ) == ["topology.yaml:4:3: nodes.1: duplicate node name '1' (first defined at line 3)"]
