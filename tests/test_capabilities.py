"""Capabilities: detection on a machine, matching, and the plan's report of unmet requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebolt_topo.capabilities import detect, missing
from codebolt_topo.errors import TopologyError
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.plan.feasibility import check_requirements
from codebolt_topo.plan.validate import validate_file


def test_detect_finds_gpu_browser_and_docker_from_probes(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nvidia0").touch()
    (tmp_path / "var/run").mkdir(parents=True)
    (tmp_path / "var/run/docker.sock").touch()
    found = detect(
        which=lambda name: "/usr/bin/chromium" if name == "chromium" else None, root=tmp_path
    )
    assert {"gpu", "cuda", "browser", "docker", "python"} <= found.found
    assert found.absent == {}


def test_detect_explains_what_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    found = detect(which=lambda name: None, root=tmp_path)
    assert "gpu" not in found.found
    assert "nvidia-smi" in found.absent["gpu"]
    assert "docker.sock" in found.absent["docker"]


def test_missing_understands_versions() -> None:
    offered = {"python", "python:3.11", "gpu"}
    assert missing(["python:3", "python:3.11", "gpu"], offered) == []
    assert missing(["python:3.12", "browser"], offered) == ["python:3.12", "browser"]


def test_plan_reports_every_unmet_requirement_with_location_reason_and_hint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: req\nnodes:\n"
        "  trainer: {requires: [gpu, python]}\n"
        "  scraper:\n    requires: [browser]\n"
        "  stand-in: {capabilities: [gpu], requires: [gpu]}\n"
    )
    validated = validate_file(path)

    def offers(provider: str):  # type: ignore[no-untyped-def]
        def offered(spec: NodeSpec) -> tuple[frozenset[str], dict[str, str]]:
            return frozenset({"python", *spec.capabilities}), {"gpu": "no NVIDIA driver found"}

        return offered

    with pytest.raises(TopologyError) as caught:
        check_requirements(validated, offers)
    issues = caught.value.issues
    assert [issue.field for issue in issues] == [
        "nodes.trainer.requires[0]",
        "nodes.scraper.requires[0]",
    ]
    assert str(issues[0]).startswith(f"{path}:3:")
    assert "no NVIDIA driver found; hint: place the node on a GPU machine" in issues[0].message
    assert "provider 'local' does not offer it" in issues[1].message
    assert str(issues[1].location).startswith(f"{path}:5:")
