"""The README's team section quotes the figures of benchmarks/RESULTS.md's latest team run (the
first run of its section), so one cannot be updated without the other (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _row(section: str, starts: str) -> str:
    return next(line for line in section.splitlines() if line.startswith(starts))


def test_the_readme_quotes_the_latest_team_figures() -> None:
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    team = results.split("## A team's shared state", 1)[1].split("\n## ", 1)[0]
    apply = re.search(r"\*\*([\d.]+)x / ", _row(team, "| apply of 20 nodes"))
    plan_row = _row(team, "| plan of 20 running nodes")
    plan = re.search(r"\*\*([\d.]+)x / ", plan_row)
    plan_ms = re.search(r"\| (\d+) / \d+ ms \| (\d+) / \d+ ms \|", plan_row)
    leads = re.search(r"\*\*([\d.]+) s\*\*", _row(team, "| the standby leads"))
    healed = re.search(r"\| ([\d.]+) s \(", _row(team, "| the killed node is replaced"))
    assert apply is not None, team
    assert plan is not None
    assert plan_ms is not None
    assert leads is not None
    assert healed is not None
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A team on one topology", 1)[1].split("\n## ", 1)[0]
    prose = " ".join(section.split())
    assert f"an apply takes {apply[1]}x and a plan {plan[1]}x" in prose
    assert f"({plan_ms[2]} ms against {plan_ms[1]} ms:" in prose
    assert f"the standby leads {leads[1]} s after the leader's SIGKILL" in prose
    assert f"{healed[1]} s after it" in prose
