"""Helpers for tests that apply real topologies on the local provider."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.reconcile import Reconciler
from codebolt_topo.model.state import State
from codebolt_topo.plan.validate import ValidatedTopology, validate_file
from codebolt_topo.testing import process_running

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

    def ports(self) -> set[int]:
        return {node.port for node in self.state.nodes.values() if node.port}

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
    ports: set[int] = set()
    try:
        apply_topology(path)
        pids.update(applied.pids())
        ports.update(applied.ports())
        yield applied
    finally:
        pids.update(applied.pids())
        ports.update(applied.ports())
        destroy_topology(path)
        leftovers = {name: pid for name, pid in pids.items() if process_running(pid)}
        assert leftovers == {}, f"processes left after destroy: {leftovers}"
        assert daemons_under(path.parent) == [], "marked node daemons left after destroy"
        held = listening_under(ports, path.parent)
        assert held == {}, f"ports still listening after destroy: {held}"
        runtime_dir = state_file_for(path, applied.validated.topology.name).runtime_dir
        assert not runtime_dir.exists(), f"runtime files left after destroy: {runtime_dir}"


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the block: a node told to use it cannot
    start."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


def held_back_during(reconciler: Reconciler, seconds: float) -> list[str]:
    """Run reconciler passes (0.1 s apart) for ``seconds``; every ``node: why`` it held back."""

    async def passes() -> list[str]:
        held: list[str] = []
        try:
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                report = await reconciler.pass_once()
                held += [f"{n}: {why}" for n, why in report.held_back.items()]
                await asyncio.sleep(0.1)
        finally:
            await reconciler.prober.close()
        return held

    return asyncio.run(passes())


def copy_example(name: str, directory: Path) -> Path:
    target = directory / f"{name}.yaml"
    shutil.copy(EXAMPLES / f"{name}.yaml", target)
    (directory / "schemas").mkdir(exist_ok=True)
    return target


def daemons_under(directory: Path) -> list[int]:
    """Pids of live node daemons whose command line names a file under ``directory`` (a test's
    own tmp dir: other runs on this machine may use the same topology name)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if (
            b"codebolt_topo.node" in cmdline
            and str(directory).encode() in cmdline
            and process_running(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def listening_under(ports: set[int], directory: Path) -> dict[int, int]:
    """port -> pid for each of ``ports`` still listening in a process whose command line names
    ``directory`` (a port the kernel handed to somebody else since is not ours to judge)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                    inodes[f"socket:[{fields[9]}]"] = port
    held: dict[int, int] = {}
    if not inodes:
        return held
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if str(directory).encode() not in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                target = os.readlink(fd.path)
                if target in inodes:
                    held[inodes[target]] = int(entry.name)
        except OSError:
            continue
    return held
