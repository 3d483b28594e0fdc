"""Narrative snapshots and bundles next to the git CLI, on the same workspace.

Run: ``python benchmarks/bench_narrative.py [--files 5000 50000] [--site-packages]
[--corpus DIR]``. Each workspace is generated (``--files N``: N small files, 100 per
directory) or copied from a real tree (``--site-packages``: the installed packages of this
interpreter, thousands of text and binary files; ``--corpus DIR``: any directory), in a
temporary directory; then, for us and for git (``/usr/local/bin/git`` or ``$GIT``):

- full snapshot vs ``git add -A && git commit``
- snapshot after 10 changed files vs the same git commands
- full bundle vs ``git bundle create --all``; incremental bundle vs ``git bundle create A..B``
- importing the full bundle into an empty store vs ``git fetch`` of it into an empty repository
- importing the incremental bundle; and the same full history in a bundle the git CLI wrote
  (repacked, with deltas) into an empty store vs ``git fetch`` of that bundle
- peak memory of our full import (a child process's VmHWM above its idle size)

It prints figures and ratios (ours / git), with ``--repeat N`` also the median of N runs; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from codebolt_topo.narrative import NarrativeStore

GIT = os.environ.get("GIT", "/usr/local/bin/git")
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([GIT, *args], cwd=cwd, env=ENV, check=False, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout.decode().strip()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def generate(root: Path, count: int) -> None:
    for i in range(count):
        directory = root / f"d{i // 100:04d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:06d}.txt").write_text(f"file {i}\n" + "x" * (i % 200) + "\n")


def copy_corpus(source: Path) -> Callable[[Path], None]:
    """A workspace maker copying *source* (symlinks kept as links, no ``.git``)."""

    def make(root: Path) -> None:
        shutil.copytree(source, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))

    return make


def change(root: Path, count: int, round_: int) -> None:
    """Rewrite *count* files: of ``d0000`` in a generated workspace (as in earlier runs), else
    spread over the whole tree (the same ones in both copies)."""
    if (root / "d0000").is_dir():
        for k in range(count):
            i = (k * 7919 + round_) % max(1, len(list(root.glob("d0000/*"))))
            (root / "d0000" / f"f{i:06d}.txt").write_text(f"changed {round_} {k}\n")
        return
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(root).parts
    )
    for k in range(count):
        path = files[(k * 7919 + round_) % len(files)]
        path.write_bytes(path.read_bytes() + f"changed {round_} {k}\n".encode())


class Rows(list[tuple[str, float, float]]):
    """Prints each figure as soon as it is measured."""

    def append(self, row: tuple[str, float, float]) -> None:
        name, ours, theirs = row
        print(f"{name:<28}{ours * 1000:>8.0f}ms{theirs * 1000:>8.0f}ms{ours / theirs:>10.2f}")
        super().append(row)


def run(make: Callable[[Path], None]) -> list[tuple[str, float, float]]:
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="bench-narrative-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        ws_ours, ws_git = base / "ours", base / "git"
        make(ws_ours)
        shutil.copytree(ws_ours, ws_git, copy_function=shutil.copy2)
        git(base, "init", "-q", str(ws_git))
        git(ws_git, "config", "gc.auto", "0")  # no detached gc racing the cleanup
        time.sleep(0.1)  # let the generated files leave the racy window, as they would in use

        with NarrativeStore.open(base / "state", ws_ours, "bench") as store:
            ours = timed(lambda: store.snapshot("o", "t", "r"))
            theirs = timed(lambda: (git(ws_git, "add", "-A"), git(ws_git, "commit", "-qm", "1")))
            rows.append(("full snapshot", ours, theirs))
            first, first_git = (
                store.heads()["refs/narrative/threads/t"],
                git(ws_git, "rev-parse", "HEAD"),
            )

            time.sleep(0.1)
            change(ws_ours, 10, 1)
            change(ws_git, 10, 1)
            ours = timed(lambda: store.snapshot("o", "t", "r"))
            theirs = timed(lambda: (git(ws_git, "add", "-A"), git(ws_git, "commit", "-qm", "2")))
            rows.append(("snapshot, 10 changed", ours, theirs))

            full: list[bytes] = []  # both sides then import two commits: the same history
            ours = timed(lambda: full.append(store.export_bundle()))
            theirs = timed(
                lambda: git(ws_git, "bundle", "create", "-q", str(base / "g.bundle"), "--all")
            )
            rows.append(("full bundle", ours, theirs))
            incremental: list[bytes] = []
            ours = timed(lambda: incremental.append(store.export_bundle(have={first})))
            theirs = timed(
                lambda: git(
                    ws_git, "bundle", "create", "-q", str(base / "gi.bundle"), f"{first_git}..HEAD"
                )
            )
            rows.append(("incremental bundle", ours, theirs))

            (base / "peer").mkdir()
            with NarrativeStore.open(base / "peer-state", base / "peer", "peer") as peer:
                ours = timed(lambda: peer.import_bundle(full[0], "bench"))
                git(base, "init", "-q", "--bare", str(base / "peer.git"))
                git(base / "peer.git", "config", "gc.auto", "0")
                theirs = timed(
                    lambda: git(
                        base / "peer.git", "fetch", "-q", str(base / "g.bundle"), "refs/*:refs/*"
                    )
                )
                rows.append(("import full bundle", ours, theirs))
                ours = timed(lambda: peer.import_bundle(incremental[0], "bench"))
                theirs = timed(
                    lambda: git(base / "peer.git", "fetch", "-q", str(base / "gi.bundle"), "HEAD")
                )
                rows.append(("import incremental bundle", ours, theirs))
            # The same narrative history in a pack the git CLI wrote (with deltas): fetched
            # into a relay, repacked, bundled; then imported by us and fetched by git.
            (base / "full.bundle").write_bytes(full[0])
            relay = base / "relay.git"
            git(base, "init", "-q", "--bare", str(relay))
            git(relay, "fetch", "-q", str(base / "full.bundle"), "refs/*:refs/*")
            git(relay, "repack", "-adfq")
            git(relay, "bundle", "create", "-q", str(base / "gn.bundle"), "--all")
            (base / "peer2").mkdir()
            with NarrativeStore.open(base / "peer2-state", base / "peer2", "peer") as peer:
                git_made = (base / "gn.bundle").read_bytes()
                ours = timed(lambda: peer.import_bundle(git_made, "bench"))
                git(base, "init", "-q", "--bare", str(base / "peer2.git"))
                git(base / "peer2.git", "config", "gc.auto", "0")
                theirs = timed(
                    lambda: git(
                        base / "peer2.git", "fetch", "-q", str(base / "gn.bundle"), "refs/*:refs/*"
                    )
                )
                rows.append(("import git-written bundle", ours, theirs))
            peak = import_peak_mib(base / "full.bundle", base / "peer3")
            print(f"{'peak memory, full import':<28}{peak:>8.1f} MiB above idle")
    return rows


def import_peak_mib(bundle: Path, where: Path) -> float:
    """Import *bundle* into a new store in a child process; MiB its VmHWM rose above idle."""
    (where / "ws").mkdir(parents=True)
    script = f"""
import gc, re
from pathlib import Path
from codebolt_topo.narrative import NarrativeStore
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
with NarrativeStore.open({str(where / "state")!r}, {str(where / "ws")!r}, "peer") as store:
    store.measures
    gc.collect()
    idle = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    with open({str(bundle)!r}, "rb") as source:
        store.import_bundle(source, "bench")
    print(status("VmHWM") - idle)
"""
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    return int(done.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, nargs="*", default=[5000, 50000])
    parser.add_argument("--site-packages", action="store_true", help="also this interpreter's")
    parser.add_argument("--corpus", type=Path, action="append", default=[], help="also DIR")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; medians printed")
    args = parser.parse_args()
    print(f"git: {git(Path.cwd(), '--version')}")
    workspaces: list[tuple[str, Callable[[Path], None]]] = [
        (f"{count} files", lambda root, count=count: generate(root, count)) for count in args.files
    ]
    corpora = [*args.corpus]
    if args.site_packages:
        corpora.append(Path(sysconfig.get_paths()["purelib"]))
    for corpus in corpora:
        files = sum(1 for p in corpus.rglob("*") if p.is_file())
        size = sum(
            p.stat().st_size for p in corpus.rglob("*") if p.is_file() and not p.is_symlink()
        )
        label = f"{corpus} ({files} files, {size / 1e6:.0f} MB)"
        workspaces.append((label, copy_corpus(corpus)))
    for label, make in workspaces:
        runs: list[list[tuple[str, float, float]]] = []
        for attempt in range(args.repeat):
            which = f", run {attempt + 1}/{args.repeat}" if args.repeat > 1 else ""
            print(f"\n{label}{which}")
            print(f"{'operation':<28}{'ours':>10}{'git':>10}{'ours/git':>10}")
            runs.append(run(make))
        if args.repeat > 1:
            print(f"\n{label}, median of {args.repeat} runs (ratio: median of the ratios)")
            print(f"{'operation':<28}{'ours':>10}{'git':>10}{'ours/git':>10}")
            for i, (name, _ours, _theirs) in enumerate(runs[0]):
                ours = statistics.median(r[i][1] for r in runs)
                theirs = statistics.median(r[i][2] for r in runs)
                ratio = statistics.median(r[i][1] / r[i][2] for r in runs)
                print(f"{name:<28}{ours * 1000:>8.0f}ms{theirs * 1000:>8.0f}ms{ratio:>10.2f}")


if __name__ == "__main__":
    main()
