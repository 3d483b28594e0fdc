"""Use case: GPU offload (examples/gpu-offload), run as its README section shows.

The laptop routes ``train.py`` to whichever node offers ``gpu`` (the stand-in trainer), the
epoch logs stream back, the after-snapshot records the artifacts on the trainer, ``sync`` pulls
that history along the edge and ``narrative restore`` puts the model in the laptop's workspace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e_helpers import applied, codebolt, copy_example, ok, workspace

pytestmark = pytest.mark.slow


def test_training_job_runs_on_the_gpu_node_and_its_artifacts_come_back(tmp_path: Path) -> None:
    folder = copy_example("gpu-offload", tmp_path)
    with applied(folder):
        train = (folder / "train.py").read_bytes()
        result = codebolt(
            "exec",
            "--requires",
            "gpu",
            "--snapshot",
            "after",
            "--objective",
            "fit",
            "--thread",
            "baseline",
            "--run",
            "run-1",
            "--stdin",
            "--",
            "python3",
            "-",
            cwd=folder,
            stdin=train,
        )
        logs = ok(result)
        assert "training on node trainer, device cpu (pure-python stand-in)" in logs
        assert [line.split(" loss")[0] for line in logs.splitlines() if "loss" in line] == [
            f"epoch {n}/5" for n in range(1, 6)
        ]
        found = re.search(
            r"\[trainer\] snapshot (\w+) \((\w+)\) 'after: python3 - \(exit 0\)'", result.stderr
        )
        assert found is not None, result.stderr
        # The artifacts exist on the trainer only, until the snapshot travels.
        laptop = workspace(folder, "gpu-offload", "laptop")
        assert (workspace(folder, "gpu-offload", "trainer") / "artifacts/model.json").exists()
        assert not (laptop / "artifacts").exists()

        assert "laptop->trainer pull trainer => laptop" in ok(codebolt("sync", cwd=folder))
        history = ok(codebolt("narrative", "log", "--node", "laptop", "--json", cwd=folder))
        assert found[2] in history
        ok(codebolt("narrative", "restore", found[1], "--node", "laptop", cwd=folder))
        model = json.loads((laptop / "artifacts/model.json").read_text())
        metrics = json.loads((laptop / "artifacts/metrics.json").read_text())
        assert model["weight"] == pytest.approx(3.0, abs=0.05)
        assert model["bias"] == pytest.approx(2.0, abs=0.05)
        assert metrics["node"] == "trainer"
        assert len(metrics["losses"]) == 5
