"""Generated workspaces round-trip byte for byte through a bundle and through a tarball.

Hypothesis draws workspaces: how many files, how deeply nested, under which names (any byte
but ``/`` and NUL, invalid UTF-8 included), of which sizes (around the readers' internal
boundaries too) and compressibility, executable or not, and symlinks that stay inside (to
files, to directories, up the tree with leading ``..``). Each is snapshotted, exported both
ways, imported into empty stores and restored; the restored trees must equal the original.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from corpus import assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codebolt_topo.narrative import NarrativeStore
from codebolt_topo.narrative.incoming import KEEP_BLOBS
from codebolt_topo.narrative.inflate import FEED
from codebolt_topo.narrative.safety import is_dotgit

pytestmark = pytest.mark.timeout(600)

_NAME_BYTES = st.sampled_from(
    [*b"abcxyzABZ019_-.,+=@ ~#%()[]{}'!", *b"\x80\xa9\xff\xfe", *"é日".encode()]
)  # fmt: skip
NAMES = (
    st.lists(_NAME_BYTES, min_size=1, max_size=12)
    .map(bytes)
    .filter(lambda n: n not in (b".", b"..") and not is_dotgit(n))
)
SIZES = st.one_of(
    st.integers(0, 300),
    st.sampled_from([KEEP_BLOBS - 1, KEEP_BLOBS, KEEP_BLOBS + 1, FEED - 1, FEED, FEED + 1]),
    st.integers(0, 300_000),
)


@st.composite
def contents(draw: st.DrawFn) -> bytes:
    size = draw(SIZES)
    kind = draw(st.sampled_from(["random", "repeated", "text", "zeros"]))
    seed = draw(st.integers(0, 2**32))
    if kind == "random":
        return random_bytes(seed, size)
    if kind == "zeros":
        return bytes(size)
    unit = b"line %d of a file\n" % seed if kind == "text" else random_bytes(seed, 7)
    return (unit * (size // len(unit) + 1))[:size]


def random_bytes(seed: int, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


Tree = dict[bytes, object]


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Tree:
    """Nested dicts: name -> bytes content, ("exec", content), or a subtree."""
    names = draw(st.lists(NAMES, min_size=0 if depth else 1, max_size=6, unique=True))
    tree: Tree = {}
    for name in names:
        if depth < 4 and draw(st.integers(0, 3)) == 0:
            tree[name] = draw(trees(depth + 1))
        elif draw(st.booleans()):
            tree[name] = ("exec", draw(contents()))
        else:
            tree[name] = draw(contents())
    return tree


def _write(root: Path, tree: Tree, rel: tuple[bytes, ...] = ()) -> list[tuple[bytes, ...]]:
    """Create *tree* under *root*; returns every path written (files and directories)."""
    written: list[tuple[bytes, ...]] = []
    for name, node in tree.items():
        path = (*rel, name)
        target = root / os.fsdecode(b"/".join(path))
        written.append(path)
        if isinstance(node, dict):
            target.mkdir()
            written += _write(root, node, path)
        elif isinstance(node, tuple):
            target.write_bytes(node[1])
            target.chmod(0o755)
        else:
            assert isinstance(node, bytes)
            target.write_bytes(node)
    return written


def _add_links(
    root: Path, paths: list[tuple[bytes, ...]], picks: list[tuple[int, int, int]]
) -> None:
    """Symlinks that stay inside: in some directory, climbing with leading ``..`` (never above
    the root) to an ancestor, then down to a file or directory under it."""
    dirs = [()] + [p for p in paths if (root / os.fsdecode(b"/".join(p))).is_dir()]
    for n, (where, to, up) in enumerate(picks):
        home = dirs[where % len(dirs)]
        climb = up % (len(home) + 1)
        ancestor = home[: len(home) - climb]
        below = [p for p in paths if p[: len(ancestor)] == ancestor and len(p) > len(ancestor)]
        down = b"/".join(below[to % len(below)][len(ancestor) :]) if below else b"."
        link = root / os.fsdecode(b"/".join((*home, b"link-%d" % n)))
        os.symlink(os.fsdecode(b"../" * climb + down), link)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    tree=trees(),
    picks=st.lists(
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 9)), max_size=4
    ),
)
def test_generated_workspaces_round_trip_in_both_formats(
    tree: Tree, picks: list[tuple[int, int, int]]
) -> None:
    with tempfile.TemporaryDirectory(prefix="narrative-property-") as tmp:
        base = Path(tmp)
        for name in ("a", "b", "c"):
            (base / name).mkdir()
        paths = _write(base / "a", tree)
        if paths:
            _add_links(base / "a", paths, picks)
        with (
            NarrativeStore.open(base / "sa", base / "a", "a") as a,
            NarrativeStore.open(base / "sb", base / "b", "b") as b,
            NarrativeStore.open(base / "sc", base / "c", "c") as c,
        ):
            info = a.snapshot("o", "t", "r")
            b.import_bundle(a.export_bundle(), "a")
            b.restore(info.snapshot_id)
            assert_same(base / "b", base / "a")
            [created] = c.import_tar(a.export_tar(info.snapshot_id)).created
            assert created.new == info.commit
            c.restore(info.snapshot_id)
            assert_same(base / "c", base / "a")
