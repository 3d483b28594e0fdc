"""Lean installs (issue 17, item 6): the core install serves the local provider; docker,
cloud-vm and e2b come with their extras, and a file naming a provider whose extra is missing is
refused by ``validate`` at that node, with the ``pip install`` line to run.

The slow tests use a real core install: a fresh venv installed, without an index, from this
checkout's wheelhouse (the wheel and its dependencies, as a cloud-vm host gets them), in which
the README's first command runs as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from codebolt_topo.model.rules import Category
from codebolt_topo.providers.cloud_vm.wheelhouse import wheelhouse
from codebolt_topo.providers.rules import ProviderRules

ROOT = Path(__file__).resolve().parents[2]
SDKS = ("docker", "asyncssh", "e2b")


class Needy(ProviderRules):
    name: ClassVar[str] = "needy"
    category: ClassVar[Category] = Category.CLOUD
    needs: ClassVar[tuple[str, ...]] = ("codebolt_no_such_sdk", "json")
    extra: ClassVar[str | None] = "needy"


def test_a_provider_whose_sdk_is_missing_says_which_extra_adds_it() -> None:
    assert Needy.unavailable() == (
        "provider 'needy' needs codebolt_no_such_sdk, which this install lacks: "
        "pip install 'codebolt-topo[needy]'"
    )
    assert ProviderRules.unavailable() is None


def test_with_every_extra_installed_every_provider_is_available() -> None:
    from codebolt_topo.model.discovery import rules_of

    for name in ("local", "docker", "cloud-vm", "e2b", "hybrid"):
        rules = rules_of(name)
        assert isinstance(rules, type)
        assert issubclass(rules, ProviderRules)
        assert rules.unavailable() is None, name


# -- a real core install ----------------------------------------------------------------------

MIXED = """\
name: mixed
nodes:
  a: {}
  b: {provider: docker}
  c:
    provider: cloud-vm
    ssh: {host: 203.0.113.7}
  d: {provider: e2b}
  w:
    provider: hybrid
    placement: [local, docker]
edges: [a -> b]
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the core install only: bin/ has its codebolt."""
    wheels = wheelhouse()
    venv = tmp_path_factory.mktemp("core") / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(wheels.directory / wheels.pip / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
            "--find-links",
            str(wheels.directory),
            "codebolt-topo",
        ],
        check=True,
        timeout=300,
        env=_outside(),
    )
    return venv


def _outside() -> dict[str, str]:
    """This environment without what points Python at this checkout or its venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(core: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = _outside()
    return subprocess.run(
        [str(core / "bin" / "codebolt"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_core_install_brings_no_provider_sdk(core: Path) -> None:
    found = subprocess.run(
        [
            str(core / "bin" / "python"),
            "-c",
            f"import importlib.util as u; print([m for m in {SDKS!r} if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validate_names_the_extra_at_each_node_that_needs_one(core: Path, tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(MIXED)
    result = _run(core, "validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: topology.yaml:4:17: nodes.b.provider: provider 'docker' needs docker, which this "
        "install lacks: pip install 'codebolt-topo[docker]'",
        "error: topology.yaml:6:15: nodes.c.provider: provider 'cloud-vm' needs asyncssh, which "
        "this install lacks: pip install 'codebolt-topo[cloud-vm]'",
        "error: topology.yaml:8:17: nodes.d.provider: provider 'e2b' needs e2b, which this "
        "install lacks: pip install 'codebolt-topo[e2b]'",
        "error: topology.yaml:11:24: nodes.w.placement[1]: provider 'docker' needs docker, which "
        "this install lacks: pip install 'codebolt-topo[docker]'",
    ]
    plan = _run(core, "plan", "--json", cwd=tmp_path)
    assert plan.returncode == 1
    assert "pip install 'codebolt-topo[docker]'" in json.loads(plan.stdout)["errors"][0]["message"]
    listed = {
        row["name"]: row
        for row in json.loads(_run(core, "providers", "--json", cwd=tmp_path).stdout)
    }
    assert listed["local"]["category"] == "local"
    assert listed["docker"]["category"] == "unavailable"
    assert "pip install 'codebolt-topo[docker]'" in listed["docker"]["module"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_readmes_first_command_runs_on_the_core_install(core: Path, tmp_path: Path) -> None:
    """Its install step is ``pip install -q .``, the core install; the rest runs verbatim."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```sh\n(.*?)\n```", readme, re.S)
    assert first is not None
    install, job = first.group(1).split(" && ", 2)[1:]
    assert install == ".venv/bin/pip install -q ."  # no extra: the local provider is enough
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(core)
    result = subprocess.run(
        ["sh", "-c", job], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_outside()
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("tick")] == [
        "tick 1 from d",
        "tick 2 from d",
        "tick 3 from d",
    ]
    assert "Destroy complete: 4 node(s) stopped." in result.stdout
