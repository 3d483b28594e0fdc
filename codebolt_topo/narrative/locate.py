"""Where a workspace's shadow store lives when nobody says, and what its environment is called.

The shadow repository must live outside the workspace (a snapshot must never contain its own
history, and the user's tree stays untouched), so the default is a sibling of the workspace:

* ``$CODEBOLT_STATE_DIR/narrative`` when ``CODEBOLT_STATE_DIR`` is set (a node's runtime dir);
* else ``<parent>/<name>.narrative`` beside the workspace ``<parent>/<name>``. On the local
  provider a node's workspace is ``.codebolt/<topology>/nodes/<node>/workspace``, so its store
  is ``.../nodes/<node>/workspace.narrative``, next to the node's other runtime files (and
  removed with them by ``destroy``). The workspace's own name is part of the path so sibling
  workspaces (``work/b``, ``work/c``) never share a store.

The environment (recorded in every snapshot, and the namespace of diverged copies a peer keeps)
defaults to ``$CODEBOLT_NODE``, which every node sets for the commands it runs, else ``local``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["HOLDS_HISTORY", "default_environment", "default_state_dir"]


def default_state_dir(
    workspace: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Path:
    """The store directory for *workspace* (see the module docstring)."""
    environ = os.environ if env is None else env
    explicit = environ.get("CODEBOLT_STATE_DIR")
    if explicit:
        return Path(explicit).resolve() / "narrative"
    ws = Path(workspace).resolve()
    return ws.parent / f"{ws.name or 'root'}.narrative"


def default_environment(env: Mapping[str, str] | None = None) -> str:
    """``$CODEBOLT_NODE`` (set on every node) or ``local``."""
    environ = os.environ if env is None else env
    return environ.get("CODEBOLT_NODE") or "local"


HOLDS_HISTORY = r"""
store="${CODEBOLT_STATE_DIR:+$CODEBOLT_STATE_DIR/narrative}"
if [ -z "$store" ]; then
  here=$(pwd -P)
  if [ "$here" = / ]; then store=/root.narrative; else store="$here.narrative"; fi
fi
git="$store/shadow.git"
[ -e "$git" ] || { echo empty; exit 0; }
command -v find >/dev/null 2>&1 || { echo unknown; exit 0; }
[ -z "$(find "$git/refs" -type f 2>/dev/null | head -n 1)" ] || { echo held; exit 0; }
if grep -q '^[^#^]' "$git/packed-refs" 2>/dev/null; then echo held; else echo empty; fi
"""
"""``sh -c`` script run in a node's workspace: prints ``empty`` when the default store (as
:func:`default_state_dir` finds it) holds no ref at all, ``held`` when it holds any (a thread,
or a peer's copy), ``unknown`` when it cannot tell. Asking costs a shell, not a Python with
this package (a destroy asks every node that may hold history; most never snapshotted)."""
