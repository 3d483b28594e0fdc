"""Whether the state file is tracked by git: it holds every node's admin token.

``codebolt init`` ignores the state directory and the engine writes a ``.gitignore`` into it when
it creates it, but a state committed before either (or added with ``git add -f``) stays tracked
and is pushed with the next commit. ``status`` asks git, and warns.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["tracked_by_git"]


def tracked_by_git(path: Path) -> bool:
    """True when ``path`` is in the index of the git work tree it lies in (False without git,
    outside a work tree, or when git does not answer within a second)."""
    git = shutil.which("git")
    if git is None or not path.exists():
        return False
    try:
        result = subprocess.run(
            [git, "ls-files", "--error-unmatch", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            timeout=1.0,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
