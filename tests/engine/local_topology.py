"""Helpers for tests that apply real topologies on the local provider."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.model.state import State
from codebolt_topo.node.testing import process_running
from codebolt_topo.plan.validate import ValidatedTopology, validate_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Applied:
    """A topology applied for real; ``run`` sends a command through its entry node."""

    path: Path
    validated: ValidatedTopology

    @property
    def state(self) -> State:
        return state_file_for(self.path, self.validated.topology.name).load()

    def pids(self) -> dict[str, int]:
        return {n: int(node.handle["pid"]) for n, node in self.state.nodes.items() if node.handle}

    def run(
        self,
        target: str | list[str],
        argv: list[str],
        *,
        entry: str | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        node = self.state.nodes[entry or self.validated.graph.entries()[0]]
        assert node.url is not None

        async def go() -> ExecResult:
            async with NodeClient.connect(node.url, node.admin_token) as client:  # type: ignore[arg-type]
                return await (await client.exec(target, argv=argv, timeout=timeout)).result()

        return asyncio.run(go())


@contextlib.contextmanager
def applied_topology(path: Path) -> Iterator[Applied]:
    """Apply ``path``, yield it, then destroy it and check nothing is left behind."""
    applied = Applied(path=path, validated=validate_file(path))
    pids: dict[str, int] = {}
    try:
        apply_topology(path)
        pids.update(applied.pids())
        yield applied
    finally:
        pids.update(applied.pids())
        destroy_topology(path)
        leftovers = {name: pid for name, pid in pids.items() if process_running(pid)}
        assert leftovers == {}, f"processes left after destroy: {leftovers}"
        runtime_dir = state_file_for(path, applied.validated.topology.name).runtime_dir
        assert not runtime_dir.exists(), f"runtime files left after destroy: {runtime_dir}"


def copy_example(name: str, directory: Path) -> Path:
    target = directory / f"{name}.yaml"
    shutil.copy(EXAMPLES / f"{name}.yaml", target)
    (directory / "schemas").mkdir(exist_ok=True)
    return target
