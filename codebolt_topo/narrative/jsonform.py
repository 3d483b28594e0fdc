"""Plain-JSON forms of snapshots, logs and import reports.

The node entry point (``python -m codebolt_topo.narrative``) prints these, the orchestrator reads
them back from the exec channel, and the CLI renders them: one shape whether the store is local
or on a node, so the CLI has a single renderer and the wire needs no pickles or dataclasses.
"""

from __future__ import annotations

from typing import Any

from codebolt_topo.narrative.hierarchy import ObjectiveLog, SnapshotInfo
from codebolt_topo.narrative.importer import ImportReport, RefChange

__all__ = ["REPORT_KINDS", "info_json", "log_json", "report_json"]

REPORT_KINDS = ("created", "updated", "diverged", "unchanged", "skipped")


def info_json(info: SnapshotInfo) -> dict[str, Any]:
    """One snapshot: ids, names and where it sits in the hierarchy."""
    meta = info.meta
    return {
        "snapshot_id": meta.snapshot_id,
        "name": meta.snapshot_name,
        "commit": info.commit,
        "parents": list(info.parents),
        "objective": {"id": meta.objective_id, "name": meta.objective_name},
        "thread": {"id": meta.thread_id, "name": meta.thread_name},
        "run": {"id": meta.run_id, "name": meta.run_name},
        "environment": meta.environment,
        "time": meta.time,
        "message": info.message,
    }


def log_json(log: list[ObjectiveLog]) -> list[dict[str, Any]]:
    """The whole hierarchy, objectives → threads → runs → snapshots (oldest first)."""
    return [
        {
            "id": objective.id,
            "name": objective.name,
            "threads": [
                {
                    "id": thread.id,
                    "name": thread.name,
                    "ref": thread.ref,
                    "head": thread.head,
                    "source_env": thread.source_env,
                    "runs": [
                        {
                            "id": run.id,
                            "name": run.name,
                            "snapshots": [info_json(s) for s in run.snapshots],
                        }
                        for run in thread.runs
                    ],
                }
                for thread in objective.threads
            ],
        }
        for objective in log
    ]


def _change(change: RefChange) -> dict[str, Any]:
    return {"thread": change.thread, "ref": change.ref, "old": change.old, "new": change.new}


def report_json(report: ImportReport) -> dict[str, Any]:
    """What an import did, thread by thread, plus the number of objects it wrote."""
    out: dict[str, Any] = {
        kind: [_change(c) for c in getattr(report, kind)] for kind in REPORT_KINDS
    }
    out["objects_written"] = report.objects_written
    return out
