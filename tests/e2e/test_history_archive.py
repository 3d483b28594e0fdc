"""History is never lost silently (issue 16, item 4), on the GPU offload use case.

The trained model comes back to the laptop as a snapshot; ``destroy`` archives both nodes'
stores beside the state and says so; after a new ``apply`` the laptop's archive is restored
into the new laptop and the model comes back. Removing a node from the file archives it too,
``plan`` says where, and ``--discard-history`` is the explicit way to lose it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e_helpers import codebolt, copy_example, ok, workspace

pytestmark = pytest.mark.slow

TRAIN = [
    "exec", "--requires", "gpu", "--snapshot", "after", "--objective", "fit",
    "--thread", "baseline", "--run", "run-1", "--stdin", "--", "python3", "-",
]  # fmt: skip


def test_destroy_then_restore_brings_the_artifacts_back(tmp_path: Path) -> None:
    folder = copy_example("gpu-offload", tmp_path)
    archive = folder / ".codebolt" / "gpu-offload.archive"
    try:
        ok(codebolt("apply", "--auto-approve", cwd=folder))
        trained = codebolt(*TRAIN, cwd=folder, stdin=(folder / "train.py").read_bytes())
        ok(trained)
        snapshot = re.search(r"\[trainer\] snapshot (\w+) ", trained.stderr)
        assert snapshot is not None, trained.stderr
        ok(codebolt("sync", cwd=folder))  # the laptop now holds the trainer's history

        destroyed = ok(codebolt("destroy", "--auto-approve", cwd=folder))
        assert "History of the nodes this replaces or removes:" in destroyed
        assert f"laptop: archived to {archive}/" in destroyed
        assert f"trainer: archived to {archive}/" in destroyed
        laptop = workspace(folder, "gpu-offload", "laptop")
        assert not laptop.exists()  # the node's directory is gone, its history is not
        listed = json.loads(ok(codebolt("history", "list", "--json", cwd=folder)))
        assert sorted(entry["node"] for entry in listed) == ["laptop", "trainer"]
        assert all(Path(entry["bundle"]).is_file() for entry in listed)

        ok(codebolt("apply", "--auto-approve", cwd=folder))  # a new laptop, empty
        restored = ok(codebolt("history", "restore", "laptop", cwd=folder))
        assert "into node 'laptop': 1 thread(s) (baseline)" in restored
        ok(codebolt("narrative", "restore", snapshot[1], "--node", "laptop", cwd=folder))
        model = json.loads((laptop / "artifacts/model.json").read_text())
        assert model["weight"] == pytest.approx(3.0, abs=0.05)
        assert json.loads((laptop / "artifacts/metrics.json").read_text())["node"] == "trainer"

        # Removing a node from the file: plan says where its history goes, apply puts it there.
        snap = ["--objective", "o", "--thread", "t", "--run", "r", "--node", "trainer"]
        ok(codebolt("narrative", "snapshot", *snap, cwd=folder))
        (folder / "alone.yaml").write_text("name: gpu-offload\nnodes: {laptop: {}}\n")
        planned = ok(codebolt("plan", "alone.yaml", cwd=folder))
        assert f"trainer: archived to {archive}/" in planned
        discarding = ok(codebolt("plan", "alone.yaml", "--discard-history", cwd=folder))
        assert "trainer: discarded as asked: its history is lost" in discarding
        ok(codebolt("apply", "alone.yaml", "--auto-approve", cwd=folder))
        listed = json.loads(ok(codebolt("history", "list", "--json", cwd=folder)))
        assert [entry["node"] for entry in listed].count("trainer") == 2
    finally:
        codebolt("destroy", "--auto-approve", "--discard-history", cwd=folder)
    gone = ok(codebolt("history", "list", cwd=folder))
    assert gone.count("laptop-") == 1  # --discard-history archived nothing more
