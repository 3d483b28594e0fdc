"""docs/architecture.md is the map of the code: every module it names exists, and every module of
a package it describes in its table is named there (a new module without a line fails this)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "codebolt_topo"
_PACKAGES = "model|plan|wire|client|node|narrative|providers|engine|children|cli"
_OUTSIDE = ("docs/", "tests/", "schemas/", "scripts/", "shared/", "examples/", "benchmarks/")


def _rows() -> dict[str, str]:
    """Package (``node/jobs/``) -> the table cell that describes its modules."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        found = re.match(r"\|\s*`([a-z_/]+/)`\s*\|(.*)\|\s*$", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def _named(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*(?:\.py|/))`", text))


def test_every_module_it_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    for path in sorted(_named(text)):
        if path.startswith(_OUTSIDE):
            continue
        if "/" not in path.rstrip("/"):
            continue  # a module or folder named inside its package's row: checked below
        if not (PACKAGE / path).exists():
            missing.append(path)
    for flow_path in re.findall(rf"(?<![/\w])((?:{_PACKAGES})(?:/[a-z_]+)+)\b", text):
        if not ((PACKAGE / flow_path).exists() or (PACKAGE / f"{flow_path}.py").exists()):
            missing.append(flow_path)
    assert missing == []


@pytest.mark.parametrize("package", sorted(_rows()))
def test_every_module_of_a_described_package_is_named(package: str) -> None:
    cell = _rows()[package]
    named = {name.rsplit("/", 1)[-1] for name in _named(cell) if name.endswith(".py")}
    folder = PACKAGE / package
    modules = {p.name for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert modules - named == set(), f"{package}: modules docs/architecture.md does not name"
    assert named - modules == set(), f"{package}: names with no such module"
