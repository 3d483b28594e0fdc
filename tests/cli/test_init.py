"""``codebolt init`` writes a topology that validates, for every seed shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.schema import build_schema
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.scaffold import SHAPES, scaffold


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_scaffolds_a_valid_topology_of_that_shape(shape: str, tmp_path: Path) -> None:
    path = scaffold(tmp_path, shape, "demo")
    validated = validate_file(path)
    assert validated.topology.shape is not None
    assert validated.topology.shape.value == shape
    assert path.read_text().startswith("# yaml-language-server: $schema=topology.schema.json\n")
    schema = json.loads((tmp_path / "topology.schema.json").read_text())
    assert schema == build_schema()
    assert not (tmp_path / ".codebolt").exists()  # nothing next to where the tokens will be


def test_scaffold_refuses_to_overwrite(tmp_path: Path) -> None:
    scaffold(tmp_path, "linear", "demo")
    with pytest.raises(ConfigError, match="already exists"):
        scaffold(tmp_path, "mesh", "demo")
    scaffold(tmp_path, "mesh", "demo", force=True)
    assert "mesh: [a, b, c]" in (tmp_path / "topology.yaml").read_text()


def test_unknown_shape(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown shape 'ring'"):
        scaffold(tmp_path, "ring", "demo")
