"""Nodes that change at the same time share one state write, and each still finds its change on
disk when its save returns (engine/saves.py): destroy of 100 local nodes used to write the whole
state 201 times."""

from __future__ import annotations

import asyncio
from pathlib import Path

from codebolt_topo.engine.runner import Engine
from codebolt_topo.engine.saves import CoalescedSaves
from codebolt_topo.engine.statefile import StateFile
from codebolt_topo.errors import StateError
from codebolt_topo.model.state import Lifecycle, NodeState
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import diff
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.memory import MemoryProvider


def _node(name: str) -> NodeState:
    return NodeState(name=name, provider="local", admin_token=f"token-{name}", launch_hash="h")


def test_each_caller_finds_its_change_on_disk_and_writes_are_shared(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    state = state_file.load()
    saves = CoalescedSaves(state_file.save)
    seen: dict[str, set[str]] = {}

    async def change(name: str) -> None:
        await asyncio.sleep(0.001 * (hash(name) % 3))  # arrive at different moments
        state.nodes[name] = _node(name)
        await saves.save(state)
        seen[name] = set(StateFile(tmp_path, "demo").load().nodes)

    async def main() -> None:
        await asyncio.gather(*(change(f"n{i}") for i in range(40)))

    with state_file.locked("test"):
        asyncio.run(main())
    assert all(name in names for name, names in seen.items()), "a change returned unsaved"
    on_disk = state_file.load()
    assert set(on_disk.nodes) == {f"n{i}" for i in range(40)}
    assert 1 <= on_disk.serial < 40, f"{on_disk.serial} writes for 40 concurrent changes"


def test_a_failed_write_reaches_every_caller_it_covered(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path, "demo")
    state = state_file.load()
    saves = CoalescedSaves(state_file.save)  # never locked: every write is refused

    async def change(name: str) -> BaseException | None:
        state.nodes[name] = _node(name)
        try:
            await saves.save(state)
        except StateError as error:
            return error
        return None

    async def main() -> list[BaseException | None]:
        return await asyncio.gather(*(change(f"n{i}") for i in range(5)))

    errors = asyncio.run(main())
    assert all(error is not None and "without holding the lock" in str(error) for error in errors)


def test_destroy_of_many_nodes_writes_the_state_a_few_times(tmp_path: Path) -> None:
    """The engine's destroy: every node goes through STOPPING and is removed, the file ends
    empty, and the writes number far fewer than two per node (what they were)."""
    path = tmp_path / "topology.yaml"
    path.write_text("name: many\nnodes:\n" + "".join(f"  n{i}: {{}}\n" for i in range(60)))
    validated = validate_file(path)
    state_file = StateFile(tmp_path / ".codebolt", "many")
    state = state_file.load()
    context = ProviderContext(
        topology="many",
        lineage=state.lineage,
        runtime_dir=state_file.runtime_dir,
        base_dir=tmp_path,
    )
    memory = MemoryProvider(context)
    engine = Engine(state_file, providers={"local": memory})
    plan = diff(desired_nodes(validated), state, {})
    with state_file.locked("apply"):
        asyncio.run(engine.apply(plan, state, configure=frozenset()))  # memory nodes: no wire
        applied = state_file.load()
        assert {n.lifecycle for n in applied.nodes.values()} == {Lifecycle.RUNNING}
        assert len(applied.nodes) == 60
        before = applied.serial
        asyncio.run(engine.destroy(state))
    after = state_file.load()
    assert after.nodes == {}
    assert memory.alive == {}
    assert after.serial - before < 60, f"{after.serial - before} writes to stop 60 nodes"
