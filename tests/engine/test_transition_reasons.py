"""Issue 17, item 7: the engine records why it moved each node on the transition itself, so
``state pull`` shows it and ``describe`` tells it without the events journal."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from codebolt_topo.engine.describe import describe_node
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.errors import TopoError

pytestmark = pytest.mark.slow


def test_transitions_carry_their_reasons_in_the_state(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "topology.yaml"
        path.write_text(f"name: why\nnodes:\n  a: {{}}\n  x: {{port: {port}}}\nedges: [a -> x]\n")
        try:
            with pytest.raises(TopoError, match="address already in use"):
                apply_topology(path)
            state = state_file_for(path, "why").load()
            a, x = state.nodes["a"], state.nodes["x"]
            assert [(t.state.value, t.reason) for t in a.history] == [
                ("STARTING", "provider local"),
                ("RUNNING", f"at {a.url}"),
            ]
            assert x.history[-1].state.value == "FAILED"
            assert "address already in use" in str(x.history[-1].reason)

            pulled = subprocess.run(
                [sys.executable, "-m", "codebolt_topo.cli.main", "state", "pull"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=True,
            )
            history = json.loads(pulled.stdout)["nodes"]["x"]["history"]
            assert "address already in use" in history[-1]["reason"]

            (state_file_for(path, "why").runtime_dir / "events.jsonl").unlink()
            described = describe_node(path, "x")
            assert described.events == []
            assert "address already in use" in described.transitions[-1].reason
            assert described.transitions[0].reason == "provider local"
        finally:
            destroy_topology(path)
