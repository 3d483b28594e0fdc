"""Narrative snapshots and bundles next to the git CLI, on the same generated workspace.

Run: ``python benchmarks/bench_narrative.py [--files 5000 50000]``. For each size it generates
that many small files (100 per directory) in a temporary directory, then times, for us and for
git (``/usr/local/bin/git`` or ``$GIT``):

- full snapshot vs ``git add -A && git commit``
- snapshot after 10 changed files vs the same git commands
- full bundle vs ``git bundle create --all``; incremental bundle vs ``git bundle create A..B``
- importing the full bundle into an empty store vs ``git fetch`` of it into an empty repository

It prints figures and ratios (ours / git), with ``--repeat N`` also the median of N runs; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
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
    done = subprocess.run([GIT, *args], cwd=cwd, env=ENV, check=True, capture_output=True)
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


def change(root: Path, count: int, round_: int) -> None:
    for k in range(count):
        i = (k * 7919 + round_) % max(1, len(list(root.glob("d0000/*"))))
        (root / "d0000" / f"f{i:06d}.txt").write_text(f"changed {round_} {k}\n")


class Rows(list[tuple[str, float, float]]):
    """Prints each figure as soon as it is measured."""

    def append(self, row: tuple[str, float, float]) -> None:
        name, ours, theirs = row
        print(f"{name:<28}{ours * 1000:>8.0f}ms{theirs * 1000:>8.0f}ms{ours / theirs:>10.2f}")
        super().append(row)


def run(count: int) -> list[tuple[str, float, float]]:
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="bench-narrative-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        ws_ours, ws_git = base / "ours", base / "git"
        generate(ws_ours, count)
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
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; medians printed")
    args = parser.parse_args()
    print(f"git: {git(Path.cwd(), '--version')}")
    for count in args.files:
        runs: list[list[tuple[str, float, float]]] = []
        for attempt in range(args.repeat):
            which = f", run {attempt + 1}/{args.repeat}" if args.repeat > 1 else ""
            print(f"\n{count} files{which}")
            print(f"{'operation':<28}{'ours':>10}{'git':>10}{'ours/git':>10}")
            runs.append(run(count))
        if args.repeat > 1:
            print(f"\n{count} files, median of {args.repeat} runs (ratio: median of the ratios)")
            print(f"{'operation':<28}{'ours':>10}{'git':>10}{'ours/git':>10}")
            for i, (name, _ours, _theirs) in enumerate(runs[0]):
                ours = statistics.median(r[i][1] for r in runs)
                theirs = statistics.median(r[i][2] for r in runs)
                ratio = statistics.median(r[i][1] / r[i][2] for r in runs)
                print(f"{name:<28}{ours * 1000:>8.0f}ms{theirs * 1000:>8.0f}ms{ratio:>10.2f}")


if __name__ == "__main__":
    main()
