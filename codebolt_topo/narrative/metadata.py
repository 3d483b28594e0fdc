"""The hierarchy metadata every snapshot commit carries, encoded as git trailers.

The metadata lives in the commit message so it travels with the commit through anything that moves
commits: bundles, ``git fetch``, tarballs, other git tools. Format (the last paragraph of the
message, one trailer per line, ``git interpret-trailers --parse`` reads it)::

    Narrative-Version: 1
    Narrative-Objective: obj-1
    Narrative-Objective-Name: "Make the build green"
    Narrative-Thread: thread-a
    Narrative-Thread-Name: "thread-a"
    Narrative-Run: run-1
    Narrative-Run-Name: "run-1"
    Narrative-Snapshot: 0195f1d2c3b4a5968778695a4b3c2d1e
    Narrative-Snapshot-Name: "after tests"
    Narrative-Environment: laptop
    Narrative-Time: 2025-01-31T12:00:00.123456Z

Ids follow :data:`~codebolt_topo.narrative.names.ID_PATTERN`; names are JSON strings so any text
(newlines, quotes, non-ASCII) fits on one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from codebolt_topo.narrative.errors import HierarchyError, InvalidNameError
from codebolt_topo.narrative.names import validate_id

__all__ = ["FORMAT_VERSION", "SnapshotMeta", "format_message", "parse_message"]

FORMAT_VERSION = "1"
_PREFIX = "Narrative-"
_IDS = ("Objective", "Thread", "Run", "Snapshot", "Environment")
_NAMES = ("Objective-Name", "Thread-Name", "Run-Name", "Snapshot-Name")


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where one snapshot sits in the hierarchy, and where and when it was taken."""

    objective_id: str
    objective_name: str
    thread_id: str
    thread_name: str
    run_id: str
    run_name: str
    snapshot_id: str
    snapshot_name: str
    environment: str
    time: str
    """ISO 8601, UTC, microseconds (``2025-01-31T12:00:00.123456Z``)."""


def format_message(meta: SnapshotMeta, message: str) -> bytes:
    """Build the full commit message: the user's text, then the trailer paragraph."""
    text = message.strip() or f"snapshot {meta.snapshot_name}"
    values = {
        "Version": FORMAT_VERSION,
        "Objective": meta.objective_id,
        "Objective-Name": json.dumps(meta.objective_name),
        "Thread": meta.thread_id,
        "Thread-Name": json.dumps(meta.thread_name),
        "Run": meta.run_id,
        "Run-Name": json.dumps(meta.run_name),
        "Snapshot": meta.snapshot_id,
        "Snapshot-Name": json.dumps(meta.snapshot_name),
        "Environment": meta.environment,
        "Time": meta.time,
    }
    trailers = "\n".join(f"{_PREFIX}{key}: {value}" for key, value in values.items())
    return f"{text}\n\n{trailers}\n".encode()


def parse_message(raw: bytes) -> SnapshotMeta | None:
    """Read the metadata of a commit message; ``None`` when the commit has none.

    Raises :class:`HierarchyError` when trailers are present but malformed, so a peer cannot make a
    commit look like part of a thread it does not belong to.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    paragraph = text.rstrip("\n").rsplit("\n\n", 1)[-1]
    fields: dict[str, str] = {}
    for line in paragraph.split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key.startswith(_PREFIX):
            fields[key[len(_PREFIX) :]] = value
    if "Version" not in fields:
        return None
    if fields["Version"] != FORMAT_VERSION:
        raise HierarchyError(f"unsupported narrative metadata version {fields['Version']!r}")
    try:
        ids = {key: validate_id(fields[key], key.lower()) for key in _IDS}
        names = {key: _name(fields[key]) for key in _NAMES}
        time = fields["Time"]
    except (KeyError, InvalidNameError, ValueError) as exc:
        raise HierarchyError(f"malformed narrative metadata: {exc}") from exc
    if len(time) > 64 or not time.isascii():
        raise HierarchyError("malformed narrative metadata: bad time")
    return SnapshotMeta(
        objective_id=ids["Objective"],
        objective_name=names["Objective-Name"],
        thread_id=ids["Thread"],
        thread_name=names["Thread-Name"],
        run_id=ids["Run"],
        run_name=names["Run-Name"],
        snapshot_id=ids["Snapshot"],
        snapshot_name=names["Snapshot-Name"],
        environment=ids["Environment"],
        time=time,
    )


def _name(encoded: str) -> str:
    value = json.loads(encoded)
    if not isinstance(value, str) or len(value) > 1024:
        raise ValueError(f"name must be a JSON string of at most 1024 characters: {encoded!r}")
    return value
