"""Every use-case example (``examples/<use-case>/``) validates and matches the JSON schema.

The five shape examples at the top of ``examples/`` are checked by ``tests/test_examples.py``;
the use-case folders are run for real by the other tests of this directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.plan.validate import validate_file

ROOT = Path(__file__).resolve().parents[2]
USE_CASES = sorted(ROOT.glob("examples/*/*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../../schemas/topology.schema.json"


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_use_case_has_an_example() -> None:
    assert {path.parent.name for path in USE_CASES} == {
        "gpu-offload",
        "distributed-team",
        "hierarchical",
        "sandboxed",
        "progressive-scaling",
        "team-across-machines",
    }


@pytest.mark.parametrize("path", USE_CASES, ids=_id)
def test_use_case_example_validates(path: Path) -> None:
    validate_file(path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE


@pytest.mark.parametrize("path", USE_CASES, ids=_id)
def test_use_case_example_matches_the_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    schema = json.loads((ROOT / "schemas" / "topology.schema.json").read_text(encoding="utf-8"))
    document: Any = YAML(typ="safe").load(path)
    assert [
        error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ] == []
