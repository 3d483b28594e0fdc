"""The README's summary of issue 18 (the shell, density, docker beside compose) quotes the
figures of benchmarks/RESULTS.md's issue 18 section: every figure in bold there is in the
README's paragraph, so one cannot be updated without the other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_quotes_every_bold_figure_of_the_issue_18_results() -> None:
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    section = results.split("## Fast from the shell and dense on one machine (issue 18)", 1)[1]
    section = section.split("\n## ", 1)[0]
    bold = re.findall(r"\*\*([^*\n]+)\*\*", section)  # in order, so pairs never mix
    figure = re.compile(r"(USS )?[\d.]+( ms| s| MB/s| MiB)?")
    figures = {text for text in bold if figure.fullmatch(text)}
    assert {"15.66 s", "1.93 s", "1.45"} <= figures, figures
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("From the shell and on one machine (issue 18;", 1)[1]
    paragraph = " ".join(paragraph.split("\n\n", 1)[0].split())
    missing = sorted(f for f in figures if f"**{f}**" not in paragraph)
    assert not missing, f"README does not quote {missing}"
