"""Write the fuzz targets' seed corpus: ``python make_seeds.py`` (from this directory).

Small valid inputs of every shape the readers accept, so mutations start deep inside them:
our bundles (full, and incremental against ``base``), the git CLI's (deltas, a thin pack), a
REF_DELTA pack, the tree shape that once made the reader spin, and our tarballs in both
manifest versions. Bundles are stored without their trailer and tars uncompressed (see
:mod:`harness`). Regenerating changes the bytes (snapshot ids and times), not the shapes.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from narrative_crafting import blob, snapshot_commit, tree_of

from codebolt_topo.narrative import NarrativeStore
from codebolt_topo.narrative.packs import object_header
from codebolt_topo.narrative.safety import MODE_FILE

HERE = Path(__file__).resolve().parent
GIT = "/usr/local/bin/git"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run([GIT, *args], cwd=cwd, check=True, capture_output=True)


def _write(name: str, data: bytes, *, trailer: bool = False) -> None:
    path = HERE / "corpus" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-20] if trailer else data)


def _files(root: Path, round_: int) -> None:
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "app.py").write_text("".join(f"line {i} {round_}\n" for i in range(60)))
    (root / "README").write_text(f"readme {round_}\n" * 20)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    if not (root / "link").is_symlink():
        (root / "link").symlink_to("src/app.py")


def main() -> None:
    shutil.rmtree(HERE / "corpus", ignore_errors=True)
    base = Path(tempfile.mkdtemp(prefix="narrative-seeds-"))
    try:
        (base / "ws").mkdir()
        with NarrativeStore.open(base / "state", base / "ws", "seed") as store:
            _files(base / "ws", 0)
            first = store.snapshot("o", "t1", "r")
            _write("base.bundle-notrailer", store.export_bundle(), trailer=True)
            _files(base / "ws", 1)
            store.snapshot("o", "t1", "r")
            _write("pack/ours-incremental", store.export_bundle(have={first.commit}), trailer=True)
            store.snapshot("o", "t2", "r2")
            _write("pack/ours-full", store.export_bundle(), trailer=True)
            relay = base / "relay"
            _git(base, "init", "-q", "--bare", str(relay))
            (base / "ours.bundle").write_bytes(store.export_bundle())
            _git(
                relay, "fetch", "-q", str(base / "ours.bundle"), "refs/narrative/*:refs/narrative/*"
            )
            _git(relay, "repack", "-adfq")
            _git(relay, "bundle", "create", "-q", str(base / "g.bundle"), "--all")
            _write("pack/git-deltas", (base / "g.bundle").read_bytes(), trailer=True)
            _git(relay, "bundle", "create", "-q", str(base / "t.bundle"),
                 f"{first.commit}..refs/narrative/threads/t1")  # fmt: skip
            _write("pack/git-thin", (base / "t.bundle").read_bytes(), trailer=True)
            tgz = store.export_tar(first.snapshot_id)
            tar = gzip.decompress(tgz)
            _write("tar/ours-v2", tar)
            _write("tar/ours-v1", _as_version_1(tar, store))
        _write("pack/spin-shape", _spin_shape(), trailer=True)
        _write("pack/ref-delta", _ref_delta(), trailer=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_version_1(tar: bytes, store: NarrativeStore) -> bytes:
    """The same snapshot as an export before manifest version 2 (every file listed)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tar)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        members = [(m, src.extractfile(m)) for m in src]
        manifest = json.loads(members[0][1].read())  # type: ignore[union-attr]
        manifest["version"], entries = 1, []
        for member, handle in members[1:]:
            data = member.linkname.encode() if member.issym() else handle.read()  # type: ignore[union-attr]
            mode = "120000" if member.issym() else ("100755" if member.mode & 0o100 else "100644")
            entries.append({"path": member.name[6:], "mode": mode,
                            "blob": blob(data).id.decode(), "size": len(data)})  # fmt: skip
            member.size = 0 if member.issym() else len(data)
            dst.addfile(member, None if member.issym() else io.BytesIO(data))
        manifest.pop("files")
        manifest["entries"] = entries
        text = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(text)
        rebuilt = io.BytesIO()
        with tarfile.open(fileobj=rebuilt, mode="w") as final:
            final.addfile(info, io.BytesIO(text))
            out.seek(0)
            with tarfile.open(fileobj=out) as body:
                for member in body:
                    final.addfile(member, body.extractfile(member) if member.isreg() else None)
    del store
    return rebuilt.getvalue()


def _pack(records: list[bytes]) -> bytes:
    return b"PACK\0\0\0\2" + len(records).to_bytes(4, "big") + b"".join(records) + bytes(20)


def _spin_shape() -> bytes:
    """A root tree of 2,000 entries, ~70 KB inflated and ~5 KB in the pack."""
    content = blob(b"x = 17\n" * 49)
    tree = tree_of({b"mod_%04d.py" % i: (MODE_FILE, content) for i in range(2000)})
    commit = snapshot_commit(tree)
    records = [object_header(o.type_num, len(o.as_raw_string())) + zlib.compress(o.as_raw_string())
               for o in (content, tree, commit)]  # fmt: skip
    return b"# v2 git bundle\n" + commit.id + b" refs/narrative/threads/t1\n\n" + _pack(records)


def _ref_delta() -> bytes:
    """A file blob sent as a REF_DELTA against another blob of the pack."""
    source, target = blob(b"source text of the base\n" * 4), blob(b"target text\n" * 5)
    tree = tree_of({b"a": (MODE_FILE, target), b"b": (MODE_FILE, source)})
    commit = snapshot_commit(tree)
    body = bytes([len(source.data), len(target.data), len(target.data)]) + target.data
    records = [
        object_header(3, len(source.data)) + zlib.compress(source.data),
        object_header(7, len(body)) + bytes.fromhex(source.id.decode()) + zlib.compress(body),
    ]
    for obj in (tree, commit):
        raw = obj.as_raw_string()
        records.append(object_header(obj.type_num, len(raw)) + zlib.compress(raw))
    return b"# v2 git bundle\n" + commit.id + b" refs/narrative/threads/t1\n\n" + _pack(records)


if __name__ == "__main__":
    main()
