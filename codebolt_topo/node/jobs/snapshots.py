"""Snapshots an ``exec`` request asks for, taken by the executing node around its job.

A request may carry ``snapshot: {when, objective, thread, run[, name]}`` (``when``: ``before``,
``after`` or ``both``; :func:`~codebolt_topo.wire.codec.decode` checks it). The node records
its workspace in its narrative store before spawning the job and/or after the job exited
(whatever its exit status, so a failed run is history too), and the ``exit`` message carries
what was recorded in ``snapshots``: one entry per snapshot, the store's JSON description plus
``when``, or ``when`` and ``error`` when it could not be taken.
A snapshot that fails does not stop the job: the command is what the caller asked to run.

The snapshot runs as ``python -m codebolt_topo.narrative snapshot`` in a child process with the
job's environment, exactly as :class:`~codebolt_topo.narrative.remote.NodeNarrative` runs it:
the same store, and a huge or hostile workspace costs a child its memory, never the daemon its
event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

__all__ = ["SNAPSHOT_TIMEOUT", "label", "take_snapshot", "wanted"]

SNAPSHOT_TIMEOUT: Final = 600.0
"""Seconds one snapshot may take (a first snapshot of a very large workspace)."""


def wanted(spec: Mapping[str, Any] | None, moment: str) -> bool:
    """Whether ``spec`` asks for a snapshot at ``moment`` (``before`` or ``after``)."""
    return spec is not None and spec["when"] in (moment, "both")


def label(spec: Mapping[str, Any], moment: str, command: str, code: int | None = None) -> str:
    """The snapshot's name: the caller's, else what happened (``after: make test (exit 1)``)."""
    base = spec.get("name") or command[:200]
    if moment == "after":
        return f"after: {base} (exit {code})"
    return f"before: {base}"


async def take_snapshot(
    spec: Mapping[str, Any], moment: str, name: str, *, workspace: Path, env: Mapping[str, str]
) -> dict[str, Any]:
    """Record ``workspace`` under the request's objective/thread/run; never raises."""
    argv = [
        sys.executable,
        "-m",
        "codebolt_topo.narrative",
        "snapshot",
        "--workspace",
        str(workspace),
        "--objective",
        spec["objective"],
        "--thread",
        spec["thread"],
        "--run",
        spec["run"],
        "--name",
        name,
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=workspace,
        )
    except OSError as exc:
        return {"when": moment, "error": f"cannot start the narrative engine: {exc}"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SNAPSHOT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"when": moment, "error": f"snapshot took longer than {SNAPSHOT_TIMEOUT:.0f} s"}
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1].removeprefix("error: ") if lines else f"exit status {proc.returncode}"
        return {"when": moment, "error": reason}
    try:
        info: dict[str, Any] = json.loads(out)
    except ValueError:
        return {"when": moment, "error": "the narrative engine printed no snapshot"}
    return {"when": moment, **info}
