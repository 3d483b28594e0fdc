"""Use case: sandboxed execution (examples/sandboxed), run as its README section shows.

The main environment (a local node) sends untrusted code to a hardened docker sandbox; its output
comes back, its attempts to reach out or write outside its workspace fail, and ``destroy``
removes the sandbox: no container, network or volume labelled with this topology's state
directory is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest
from e2e_helpers import codebolt, copy_example, ok

from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.providers.docker.names import LABEL_STATE_DIR

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _labelled(engine: Any, runtime_dir: Path) -> list[str]:
    """Containers, networks and volumes the docker provider made for this topology instance."""
    filters = {"label": [f"{LABEL_STATE_DIR}={runtime_dir}"]}
    return (
        [f"container:{c.name}" for c in engine.containers.list(all=True, filters=filters)]
        + [f"network:{n.name}" for n in engine.networks.list(filters=filters)]
        + [f"volume:{v.name}" for v in engine.volumes.list(filters=filters)]
    )


@pytest.mark.usefixtures("node_image")
def test_untrusted_code_runs_in_the_sandbox_and_cannot_reach_out(tmp_path: Path) -> None:
    folder = copy_example("sandboxed", tmp_path)
    engine = docker.from_env(timeout=60)
    runtime_dir = state_file_for(folder / "topology.yaml", "sandboxed").runtime_dir
    ok(codebolt("apply", "--auto-approve", cwd=folder, timeout=300))
    try:
        handle = state_file_for(folder / "topology.yaml", "sandboxed").load().nodes["sandbox"]
        container: dict[str, Any] = engine.api.inspect_container(handle.handle["id"])
        network = engine.networks.get(container["HostConfig"]["NetworkMode"])
        assert network.attrs["Internal"] is True
        assert container["HostConfig"]["ReadonlyRootfs"] is True

        script = (folder / "untrusted.py").read_bytes()
        out = ok(
            codebolt("exec", "sandbox", "--stdin", "--", "python3", "-", cwd=folder, stdin=script)
        )
        lines = out.splitlines()
        assert lines[:3] == [
            "running on sandbox as uid 10001",
            "result: 332833500",
            "wrote scratch.txt in the workspace",
        ]
        assert [line.split(": blocked")[0] for line in lines[3:]] == [
            "connect to 1.1.1.1:53",
            "resolve example.com",
            "write /etc/passwd",
            "write /usr/bin/evil",
        ]
        assert all(": blocked (" in line for line in lines[3:]), out
    finally:
        ok(codebolt("destroy", "--auto-approve", cwd=folder, timeout=300))
    assert _labelled(engine, runtime_dir) == []
