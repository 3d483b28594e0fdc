"""Run one import in a fresh process and report its memory: ``python rss_child.py SPEC``.

SPEC is JSON: ``{"state": ..., "workspace": ..., "format": "bundle" | "tar", "file": ...,
"limits": {...}}``. The store is opened and everything imported first; then the idle resident
size is read, the kernel's peak (VmHWM) is reset to it (``/proc/self/clear_refs``), the archive
is imported from the file as a stream, and one JSON line reports ``idle_kib``, ``peak_kib``
and either ``report`` or ``error`` (the refusal's class and message).
"""

from __future__ import annotations

import gc
import json
import re
import sys
from pathlib import Path

from codebolt_topo.narrative import Limits, NarrativeError, NarrativeStore
from codebolt_topo.narrative.jsonform import report_json


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def main() -> None:
    spec = json.loads(sys.argv[1])
    limits = Limits(**spec.get("limits", {}))
    with NarrativeStore.open(spec["state"], spec["workspace"], "receiver", limits=limits) as store:
        store.measures  # noqa: B018 - opened before the baseline, like every import does
        gc.collect()
        idle = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        outcome: dict[str, object]
        with open(spec["file"], "rb") as source:
            try:
                if spec["format"] == "tar":
                    report = store.import_tar(source)
                else:
                    report = store.import_bundle(source, "peer", copies=True)
                outcome = {"report": report_json(report)}
            except NarrativeError as error:
                outcome = {"error": type(error).__name__, "message": str(error)}
        peak = _status("VmHWM")
    print(json.dumps({"idle_kib": idle, "peak_kib": peak, **outcome}))


if __name__ == "__main__":
    main()
