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
