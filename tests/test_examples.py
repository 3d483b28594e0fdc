"""Every shipped example loads, passes every check, matches its JSON schema and its shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.plan.validate import validate_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/topology.schema.json"


def test_the_five_examples_exist() -> None:
    assert [path.stem for path in EXAMPLES] == ["fan-out", "hub", "linear", "mesh", "tree"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_validates_and_declares_its_shape(path: Path) -> None:
    validated = validate_file(path)
    topology = validated.topology
    assert topology.shape is not None
    assert topology.shape.value == path.stem
    assert all(spec.provider == "local" and spec.port is None for spec in topology.nodes.values())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_points_editors_at_the_schema(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == SCHEMA_LINE
    assert lines[1].startswith("# ")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_matches_the_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    schema = json.loads((ROOT / "schemas" / "topology.schema.json").read_text(encoding="utf-8"))
    document: Any = YAML(typ="safe").load(path)
    assert [
        error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ] == []


EXPECTED_EDGES = {
    "linear": ["a -> b", "b -> c", "c -> d"],
    "fan-out": ["a -> b", "a -> c", "a -> d"],
    "tree": ["a -> b", "a -> c", "b -> d", "b -> e", "c -> f", "c -> g"],
    "mesh": ["a -> b", "a -> c", "b -> a", "b -> c", "c -> a", "c -> b"],
    "hub": ["b -> a", "c -> a", "d -> a", "a -> e", "a -> f"],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_edges(path: Path) -> None:
    assert [str(edge) for edge in validate_file(path).edges] == EXPECTED_EDGES[path.stem]


def test_one_example_mixes_an_explicit_edge_with_a_generator() -> None:
    fields = {edge.field for edge in validate_file(ROOT / "examples" / "tree.yaml").edges}
    assert fields == {"edges[0].tree", "edges[1]"}


@pytest.mark.slow
def test_the_readmes_main_job_runs_as_written(tmp_path: Path) -> None:
    """The README's first command (issue 2: apply linear, route A -> B -> C -> D, stream,
    destroy), run verbatim after its install step, with the installed ``codebolt`` standing for
    ``.venv/bin/codebolt``, in a copy of examples/ so the state lands outside the repository."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```sh\n(.*?)\n```", readme, re.S)
    assert first is not None
    command = first.group(1)
    install, job = command.split(" && ", 1)
    assert install.startswith("python3 -m venv .venv")
    assert "pip install" in job.split(" && ")[0]
    job = job.split(" && ", 1)[1]
    assert "apply examples/linear.yaml" in job
    assert "destroy examples/linear.yaml" in job
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shim = tmp_path / ".venv" / "bin"
    shim.mkdir(parents=True)
    (shim / "codebolt").write_text(
        f'#!/bin/sh\nexec {sys.executable} -m codebolt_topo.cli.main "$@"\n'
    )
    (shim / "codebolt").chmod(0o755)
    result = subprocess.run(
        ["sh", "-c", job],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("tick")] == [
        "tick 1 from d",
        "tick 2 from d",
        "tick 3 from d",
    ]
    assert "Destroy complete: 4 node(s) stopped." in result.stdout
    state = json.loads((tmp_path / "examples" / ".codebolt" / "linear.state.json").read_text())
    assert state["nodes"] == {}
