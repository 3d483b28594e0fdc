"""The committed JSON schema matches the models and accepts and rejects what the loader does."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "topology.schema.json"


def gen_schema() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "scripts" / "gen_schema.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=None)


def test_committed_schema_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == gen_schema().render_schema(), (
        "schemas/topology.schema.json is stale: run python scripts/gen_schema.py"
    )


def test_check_flag(tmp_path: Path) -> None:
    module = gen_schema()
    target = tmp_path / "schema.json"
    assert module.main(["--check", "--output", str(target)]) == 1
    assert module.main(["--output", str(target)]) == 0
    assert module.main(["--check", "--output", str(target)]) == 0
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert data["$id"]
    assert data["title"]


def test_schema_is_valid_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "edges",
    [
        ["a -> b", "a <-> b -> a"],
        [{"from": "a", "to": "b"}],
        [{"linear": ["a", "b"]}],
        [{"fan-out": {"root": "a", "leaves": ["b"]}}],
        [{"tree": {"a": {"b": ["c"], "c": None, "d": {}}}}],
        [{"mesh": ["a", "b"]}],
        [{"hub": {"hub": "a", "inbound": ["b"]}}],
    ],
)
def test_schema_accepts_every_edge_form(edges: list[Any]) -> None:
    document = {"name": "t", "nodes": {"a": None, "b": {"port": 1}}, "edges": edges}
    assert list(validator().iter_errors(document)) == []


@pytest.mark.parametrize(
    "document",
    [
        {"name": "t", "nodes": {"a": {"provder": "local"}}},
        {"name": "t", "nodes": {"A": {}}},
        {"name": "t", "nodes": {"a": {}}, "edges": ["a - b"]},
        {"name": "t", "nodes": {"a": {}}, "edges": [{"linear": ["a"], "mesh": ["a", "b"]}]},
        {"name": "t", "nodes": {"a": {}}, "edges": [{"tree": {"a": 5}}]},
        {"name": "t", "nodes": {}},
        {"nodes": {"a": {}}},
    ],
)
def test_schema_rejects_what_the_loader_rejects(document: dict[str, Any]) -> None:
    assert list(validator().iter_errors(document))


# -- real snippets against the schema (issue 17, item 5) ---------------------------------------

README = ROOT / "README.md"
EXAMPLE_FILES = sorted(
    path for path in (ROOT / "examples").rglob("*.yaml") if "nodes:" in path.read_text()
)


def readme_topologies() -> list[tuple[str, str]]:
    """Every YAML block of the README that holds a topology, named by its line; a block that
    leaves out ``name:`` (a fragment of a bigger file) gets one."""
    import re

    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
        block = match.group(1)
        if "nodes:" not in block:
            continue
        if not re.search(r"^name:", block, re.M):
            block = "name: readme\n" + block
        found.append((f"README.md:{text[: match.start()].count(chr(10)) + 2}", block))
    return found


def _errors(document: Any) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator().iter_errors(document)
    ]


@pytest.mark.parametrize(("where", "text"), readme_topologies(), ids=lambda v: v[:16])
def test_every_readme_topology_matches_the_schema_and_the_loader(
    where: str, text: str, tmp_path: Path
) -> None:
    from ruamel.yaml import YAML

    from codebolt_topo.plan.validate import validate_file

    assert _errors(YAML(typ="safe", pure=True).load(text)) == [], where
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    validate_file(path)


def test_the_readme_has_its_topologies() -> None:
    assert len(readme_topologies()) >= 7


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_every_example_topology_matches_the_schema(path: Path) -> None:
    from ruamel.yaml import YAML

    assert _errors(YAML(typ="safe").load(path)) == []


def _node(**settings: Any) -> dict[str, Any]:
    return {"name": "t", "nodes": {"a": settings}}


@pytest.mark.parametrize("value", ["30s", "500ms", "2m", "1.5h", " 2 s", 30, 0.25, "10"])
def test_durations_take_the_loaders_forms(value: Any) -> None:
    assert _errors({"name": "t", "heartbeat": {"interval": value}, "nodes": {"a": None}}) == []
    assert _errors(_node(heartbeat={"interval": value, "fail_after": value})) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-5, "-5 is less than or equal to the minimum of 0"),
        (0, "0 is less than or equal to the minimum of 0"),
        ("0s", "'0s' does not match"),
        ("soon", "'soon' does not match"),
        (True, "True is not of type 'number', 'string'"),
    ],
)
def test_durations_refuse_what_the_loader_refuses(value: Any, message: str) -> None:
    [error] = _errors({"name": "t", "heartbeat": {"interval": value}, "nodes": {"a": None}})
    assert error.startswith(f"heartbeat.interval: {message}")


def test_provider_is_an_installed_provider() -> None:
    from codebolt_topo.model.discovery import provider_names

    assert _errors(_node(provider="dokcer")) == [
        f"nodes.a.provider: 'dokcer' is not one of {provider_names()}"
    ]
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    provider = schema["$defs"]["NodeSpec"]["properties"]["provider"]
    assert provider["enum"] == provider_names()
    assert "installed providers" in provider["description"]
    placeable = [name for name in provider_names() if name != "hybrid"]
    hybrid = _node(provider="hybrid", placement=["locl", {"provider": "hybrid"}])
    assert sorted(_errors(hybrid)) == [
        f"nodes.a.placement.0: 'locl' is not one of {placeable}",
        f"nodes.a.placement.1.provider: 'hybrid' is not one of {placeable}",
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            _node(provder="local"),
            ["nodes.a: Additional properties are not allowed ('provder' was unexpected)"],
        ),
        (
            _node(heartbeat={"intervall": "2s"}),
            [
                "nodes.a.heartbeat: Additional properties are not allowed "
                "('intervall' was unexpected)"
            ],
        ),
        (
            _node(provider="cloud-vm", ssh={"host": "h", "usr": "me"}),
            ["nodes.a.ssh: Additional properties are not allowed ('usr' was unexpected)"],
        ),
        (_node(port="abc"), ["nodes.a.port: 'abc' is not of type 'integer', 'null'"]),
        (_node(plugins={"x": 3}), ["nodes.a.plugins.x: 3 is not of type 'boolean', 'object'"]),
        (
            {"name": "t", "nodes": {"a": {}}, "edges": [{"form": "a", "to": "b"}]},
            [
                "edges.0: Additional properties are not allowed ('form' was unexpected)",
                "edges.0: 'from' is a required property",
            ],
        ),
        (
            {"name": "t", "nodes": {"a": {}}, "edges": [{"linera": ["a", "b"]}]},
            [
                "edges.0: 'linera' is not one of "
                "['from', 'to', 'linear', 'fan-out', 'tree', 'mesh', 'hub']"
            ],
        ),
        (
            {"name": "t", "nodes": {"a": {}}, "edges": [{"fan-out": {"root": "a", "leafs": []}}]},
            [
                "edges.0.fan-out: Additional properties are not allowed ('leafs' was unexpected)",
                "edges.0.fan-out: 'leaves' is a required property",
            ],
        ),
        (
            {"name": "t", "nodes": {"a": {}}, "edges": [5]},
            ["edges.0: 5 is not of type 'object', 'string'"],
        ),
    ],
)
def test_a_mistake_is_reported_where_it_is(document: dict[str, Any], expected: list[str]) -> None:
    """Not "not valid under any of the given schemas": the key or value that is wrong."""
    assert sorted(_errors(document)) == sorted(expected)
