"""``codebolt graph --format svg|png`` draws node states with Graphviz."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codebolt_topo.cli.graph_image import render_image

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)


def test_svg_shows_every_node_with_its_state(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: pic\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n")
    target = render_image(path, "svg", None)
    assert target == tmp_path / "pic.svg"
    svg = target.read_text()
    assert svg.count("not applied") == 2
    assert ">a<" in svg
    assert ">b<" in svg


def test_png_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("name: pic\nnodes: {a: {}}\n")
    target = render_image(path, "png", tmp_path / "out.png")
    assert target.read_bytes().startswith(b"\x89PNG")
