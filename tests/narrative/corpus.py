"""Real inputs for the round-trip tests: copying trees, comparing them byte for byte, git.

A round trip is judged on what a snapshot promises to keep: every file's bytes and executable
bit, every symlink's target, nothing more and nothing less. Directories only exist to hold those
(git stores no empty directory), ``.git`` is never captured.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

GIT = "/usr/local/bin/git"
SOURCE_TREE = Path(__file__).resolve().parents[2] / "codebolt_topo"
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
SITE_SUBSET = (
    "networkx", "dulwich", "pydantic", "pydantic_core", "rich", "jinja2", "websockets",
    "docker", "asyncssh", "e2b",
)  # fmt: skip
"""Installed packages of the test environment: ~2,700 files, ~55 MB, .py, .pyc, .so, .pyi."""

Shape = dict[str, tuple[str, bytes | str, bool]]
"""Relative path -> ("file", content, executable) or ("link", target, False)."""


def shape(root: Path) -> Shape:
    """What a snapshot of *root* must restore: files with their bytes and exec bit, links."""
    found: Shape = {}
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.name == ".git":
                    continue
                rel = str(Path(entry.path).relative_to(root))
                if entry.is_symlink():
                    found[rel] = ("link", os.readlink(entry.path), False)
                elif entry.is_dir():
                    pending.append(Path(entry.path))
                elif entry.is_file():
                    executable = bool(entry.stat().st_mode & 0o100)
                    found[rel] = ("file", Path(entry.path).read_bytes(), executable)
    return found


def assert_same(restored: Path, original: Path) -> None:
    """*restored* holds exactly the files and links of *original*, byte for byte."""
    got, want = shape(restored), shape(original)
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    assert not missing, f"missing {missing[:5]}"
    assert not extra, f"unexpected {extra[:5]}"
    differ = [path for path in want if got[path] != want[path]]
    assert not differ, f"{len(differ)} paths differ, first {differ[:5]}"


def copy_tree(source: Path, target: Path) -> None:
    """Copy *source* into *target* (created), keeping modes and symlinks as they are."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git"))  # fmt: skip


def site_packages_subset(target: Path) -> None:
    """Copy the packages of :data:`SITE_SUBSET` installed here into *target*."""
    for name in SITE_SUBSET:
        if (SITE_PACKAGES / name).is_dir():
            copy_tree(SITE_PACKAGES / name, target / name)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def git_bundle_of(bundle: bytes, workdir: Path, *, window: int = 10) -> bytes:
    """The same history as *bundle*, written by the git CLI: fetched, repacked with deltas
    (``--window``), bundled again."""
    repo = workdir / "relay"
    git(workdir, "init", "-q", "--bare", str(repo))
    (workdir / "ours.bundle").write_bytes(bundle)
    git(repo, "fetch", "-q", str(workdir / "ours.bundle"), "refs/narrative/*:refs/narrative/*")
    git(repo, "repack", "-adfq", f"--window={window}", "--depth=50")
    git(repo, "bundle", "create", "-q", str(workdir / "git.bundle"), "--all")
    return (workdir / "git.bundle").read_bytes()
