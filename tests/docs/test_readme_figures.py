"""The README quotes the docker figures of the latest benchmark run, not an older one (issue 17,
item 7: it still said 39.0 s and 186x where benchmarks/RESULTS.md says 4.03 s and 22.7x)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _latest_docker_row() -> str:
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    latest = results.split("## Latest figures", 1)[1].split("\n## ", 1)[0]
    return next(line for line in latest.splitlines() if line.startswith("| docker: apply"))


def test_the_readme_quotes_the_latest_docker_figures() -> None:
    row = _latest_docker_row()
    applies = re.search(r"\*\*([\d.]+ / [\d.]+ / [\d.]+) s\*\*", row)
    exec_ms = re.search(r"daemon ([\d.]+) ms vs `docker exec` ([\d.]+) ms \(([\d.]+)x\)", row)
    assert applies, row
    assert exec_ms, row
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    docker = readme.split("## Docker nodes", 1)[1].split("\n## ", 1)[0]
    assert f"{applies[1]} s" in docker
    assert f"{exec_ms[1]} ms (median) against {exec_ms[2]} ms for `docker exec`" in docker
    assert f"({exec_ms[3]}x)" in docker
