"""Data paths ↔ text, and locating paths that were not written (nearest ancestor)."""

from __future__ import annotations

import pytest

from codebolt_topo.errors import Location
from codebolt_topo.model.source import SourceMap, Span, format_path, parse_path


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("nodes", "trainer", "provider"), "nodes.trainer.provider"),
        (("edges", 2, "fan-out", "leaves", 0), "edges[2].fan-out.leaves[0]"),
        (("edges", 0, "tree", "a_1", "b-2", 3), "edges[0].tree.a_1.b-2[3]"),
    ],
)
def test_format_and_parse_are_inverse(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text
    assert parse_path(text) == path


def test_locate_value_key_and_ancestor() -> None:
    sources = SourceMap(
        "t.yaml",
        {
            (): Span(None, (1, 1)),
            ("nodes",): Span((2, 1), (3, 3)),
            ("nodes", "a"): Span((3, 3), (3, 6)),
        },
    )
    assert sources.locate("nodes.a") == Location("t.yaml", 3, 6)
    assert sources.locate("nodes.a", key=True) == Location("t.yaml", 3, 3)
    assert sources.locate(("nodes", "a", "port")) == Location("t.yaml", 3, 6)
    assert sources.locate("nodes.a.port", key=True) == Location("t.yaml", 3, 6)
    assert sources.locate("edges[0]") == Location("t.yaml", 1, 1)
    assert SourceMap("t.yaml").locate("x") == Location("t.yaml")
