"""The command line that runs the narrative entry point (``python -m codebolt_topo.narrative``)
on a node, through an ``exec``: one script for everyone who runs it on a node they do not share
a Python with (the orchestrator's :class:`~codebolt_topo.narrative.remote.NodeNarrative`, and a
node syncing with its peer along an edge, ``node/narrative_sync.py``).

Which Python runs it: ``$CODEBOLT_PYTHON`` when the request or the node's environment sets it,
else the interpreter of the node daemon itself (its ``argv[0]``, read from
``/proc/$PPID/cmdline``: the daemon is the job's parent, and it certainly has this package; a
relative ``argv[0]``, as an e2b sandbox's ``.codebolt/venv/bin/python``, is taken from the
daemon's working directory, not the job's), else ``python3`` from ``PATH``.
"""

from __future__ import annotations

__all__ = ["LAUNCHER", "narrative_argv"]

LAUNCHER = r"""
py="${CODEBOLT_PYTHON:-}"
if [ -z "$py" ] && [ -r "/proc/$PPID/cmdline" ]; then
  py=$(tr '\0' '\n' < "/proc/$PPID/cmdline" | head -n 1)
  case "$py" in /*) ;; */*) py="$(readlink "/proc/$PPID/cwd")/$py" ;; esac
  case "$py" in */python*|python*) ;; *) py="" ;; esac
fi
exec "${py:-python3}" -m codebolt_topo.narrative "$@"
"""
"""The ``sh -c`` script that finds the node's Python and runs the entry point with ``$@``."""


def narrative_argv(command: str, *args: str) -> list[str]:
    """The ``argv`` of an ``exec`` running narrative *command* with *args* on its node."""
    return ["/bin/sh", "-c", LAUNCHER, "codebolt-narrative", command, *args]
