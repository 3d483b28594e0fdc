"""The README and the architecture map quote the latest sync figures of benchmarks/RESULTS.md
(the bold ones: the committed code's run), as the other README figures are held to theirs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _latest_full_row() -> tuple[str, str, str]:
    """(through the orchestrator node to node, relayed, bundle) of the bold full-sync row."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    section = results.split("## Sync node to node along the edge", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| full") and "**" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    return cells[3].strip("*"), cells[4], cells[5]


def test_the_readme_and_the_map_quote_the_latest_sync_figures() -> None:
    ours, relayed, bundle = _latest_full_row()
    count = re.fullmatch(r"(\d+) B", ours)
    assert count, ours
    readme, architecture = (_words(ROOT / name) for name in ("README.md", "docs/architecture.md"))
    assert f"{count[1]} bytes through it against {relayed} when it relayed the {bundle}" in readme
    assert f"({relayed} for a {bundle} bundle, against {count[1]} bytes now," in architecture


def _words(path: Path) -> str:
    """The file's text with every run of whitespace one space: immune to re-wrapping."""
    return " ".join(path.read_text(encoding="utf-8").split())
