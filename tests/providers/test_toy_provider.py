"""A provider written outside the project (tests/toy_provider/) and installed through its entry
point adds a settings block and checks that ``validate`` reports with file:line:col, typos in
its block included, without any change to ``codebolt_topo.model`` or ``codebolt_topo.plan``.

The provider is "installed" by a throwaway ``*.dist-info`` directory holding its entry point,
put on the path of a ``codebolt validate`` subprocess, or of this process (then the discovery
caches are refreshed before and after).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.model import discovery
from codebolt_topo.model.schema import build_schema
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.registry import describe_providers

TESTS = Path(__file__).resolve().parents[1]

CHECKED = """\
name: shop
nodes:
  counter: {}
  cone: {provider: toy, toy: {flavour: liquorice, cones: 2}}
  cup: {provider: toy, toy: {flavour: vanilla}}
edges: [counter -> cone, counter -> cup]
"""

REFUSED = """\
name: shop
nodes:
  counter: {toy: {flavour: vanilla}}
  stall: {provider: toy}
  cone:
    provider: toy
    toy: {flavor: vanilla}
"""


@pytest.fixture
def toy_site(tmp_path: Path) -> Path:
    """A directory that installs the toy provider when on the path: its entry point only."""
    dist = tmp_path / "site" / "toy_provider-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-provider\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[codebolt_topo.providers]\ntoy = toy_provider:ToyProvider\n"
    )
    return dist.parent


@pytest.fixture
def toy_installed(toy_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The toy provider installed in this process for one test."""
    monkeypatch.syspath_prepend(str(toy_site))
    discovery.refresh()
    yield
    monkeypatch.undo()
    discovery.refresh()


def _validate(tmp_path: Path, site: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "topology.yaml").write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)])}
    return subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", "validate", "topology.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_toy_check_is_reported_at_its_line(tmp_path: Path, toy_site: Path) -> None:
    result = _validate(tmp_path, toy_site, CHECKED)
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines() == [
        "error: topology.yaml:4:40: nodes.cone.toy.flavour: flavour 'liquorice' is off the menu "
        "(vanilla, chocolate)",
    ]


def test_toy_settings_are_refused_required_and_typo_checked(tmp_path: Path, toy_site: Path) -> None:
    result = _validate(tmp_path, toy_site, REFUSED)
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines() == [
        "error: topology.yaml:3:12: nodes.counter: toy: only provider: toy serves toys",
        "error: topology.yaml:4:10: nodes.stall: toy: a toy node needs a toy block (at least "
        "flavour)",
        "error: topology.yaml:7:10: nodes.cone.toy: missing required field 'flavour'",
        "error: topology.yaml:7:11: nodes.cone.toy.flavor: unknown field 'flavor' (did you mean "
        "'flavour'?)",
    ]


def test_without_its_entry_point_the_toy_block_is_an_unknown_field(tmp_path: Path) -> None:
    result = _validate(tmp_path, tmp_path, CHECKED)
    assert result.returncode == 1
    assert "nodes.cone.provider: unknown provider 'toy'" in result.stderr
    assert "nodes.cone.toy: unknown field 'toy'" in result.stderr


def test_in_process_the_toy_provider_is_validated_listed_and_in_the_schema(
    tmp_path: Path, toy_installed: None
) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(CHECKED)
    with pytest.raises(TopologyError) as caught:
        validate_file(path)
    assert [issue.field for issue in caught.value.issues] == ["nodes.cone.toy.flavour"]
    toy = next(row for row in describe_providers() if row.name == "toy")
    assert (toy.category, toy.module) == ("local", "toy_provider:ToyProvider")
    node = build_schema()["$defs"]["NodeSpec"]
    assert "toy" in node["properties"]
    assert "Scoop" in build_schema()["$defs"]
