"""Issue 14, item 1: apply wires each edge from the end its ``dial`` and the providers choose.

Real local daemons. ``Behind`` is the local provider with one twist, as for a laptop behind NAT
or a sandbox: nobody can address its node ``lap``, while ``lap`` reaches everyone. ``auto``
makes ``lap`` dial its sender and work reaches it; ``dial: sender`` asks for the impossible and
the apply names the edge; ``dial: receiver`` between ordinary nodes is honoured as written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.engine.dialing import dial_token, resolve_edge
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.engine.runner import ApplyError, Engine
from codebolt_topo.model.state import NodeState
from codebolt_topo.plan.desired import desired_nodes
from codebolt_topo.plan.diff import diff
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.local.provider import LocalProvider
from codebolt_topo.wire.config import token_digest

pytestmark = pytest.mark.slow


class Behind(LocalProvider):
    """Local nodes, but node ``lap`` cannot be addressed by anyone (it can address others)."""

    def peer_url(self, peer: NodeState, sender: NodeState | None = None) -> str | None:
        return None if peer.name == "lap" else peer.url


def _apply(
    tmp_path: Path, edges: str
) -> tuple[str | None, dict[str, ExecResult], dict[str, object]]:
    path = tmp_path / "t.yaml"
    path.write_text(f"name: dialwire\nnodes: {{hub: {{}}, lap: {{}}, w: {{}}}}\nedges: {edges}\n")
    validated = validate_file(path)
    state_file = state_file_for(path, "dialwire")

    async def run() -> tuple[str | None, dict[str, ExecResult], dict[str, object]]:
        state = state_file.load()
        context = ProviderContext("dialwire", state.lineage, state_file.runtime_dir, tmp_path)
        engine = Engine(state_file, providers={"local": Behind(context)})
        failure: str | None = None
        try:
            plan = diff(desired_nodes(validated), state, await engine.refresh(state))
            try:
                await engine.apply(plan, state)
            except ApplyError as error:
                failure = str(error)
            hub = state.nodes["hub"]
            results = {}
            async with NodeClient.connect(hub.url or "", hub.admin_token or "") as client:
                for target in ("lap", "w"):
                    handle = await client.exec(target, shell="echo $CODEBOLT_NODE")
                    results[target] = await handle.result()
            wiring = {
                "hub": engine.peer_links(state, plan.desired["hub"])[0],
                "lap": engine.dial_outs(state, plan.desired["lap"]),
                "w": engine.dial_outs(state, plan.desired["w"]),
            }
            return failure, results, wiring
        finally:
            await engine.destroy(state)

    with state_file.locked("apply"):
        return asyncio.run(run())


def test_auto_makes_the_unaddressable_receiver_dial_and_work_reaches_it(tmp_path: Path) -> None:
    failure, results, wiring = _apply(tmp_path, "[hub -> lap, hub -> w]")
    assert failure is None
    assert results["lap"]["lap"].stdout == b"lap\n"
    assert results["w"]["w"].stdout == b"w\n"
    links = wiring["hub"]
    assert links["lap"].dial == "receiver"  # type: ignore[index]
    assert links["lap"].url is None  # type: ignore[index]
    assert links["w"].dial == "sender"  # type: ignore[index]
    assert links["w"].url  # type: ignore[index]
    assert set(wiring["lap"]) == {"hub"}  # type: ignore[arg-type]
    assert wiring["w"] == {}


def test_dial_sender_to_an_unaddressable_node_fails_the_apply_naming_the_edge(
    tmp_path: Path,
) -> None:
    failure, results, _ = _apply(tmp_path, "[{from: hub, to: lap, dial: sender}, hub -> w]")
    assert failure is not None
    assert "edge hub -> lap" in failure
    assert results["lap"]["lap"].failure is not None
    assert results["lap"]["lap"].failure.code == "unreachable"
    assert results["w"]["w"].stdout == b"w\n"


def test_dial_receiver_is_honoured_between_nodes_that_reach_each_other(tmp_path: Path) -> None:
    failure, results, wiring = _apply(tmp_path, "[hub -> lap, {from: hub, to: w, dial: receiver}]")
    assert failure is None
    assert results["w"]["w"].stdout == b"w\n"
    assert wiring["hub"]["w"].dial == "receiver"  # type: ignore[index]
    assert set(wiring["w"]) == {"hub"}  # type: ignore[arg-type]


def test_resolution_and_the_derived_dial_token() -> None:
    a, b = NodeState.model_construct(name="a"), NodeState.model_construct(name="b")

    def both(start: NodeState, end: NodeState) -> str | None:
        return f"ws://{end.name}"

    def only_b_reaches_a(start: NodeState, end: NodeState) -> str | None:
        return f"ws://{end.name}" if start is b else None

    assert resolve_edge("auto", a, b, both).side == "sender"
    assert resolve_edge("receiver", a, b, both).side == "receiver"
    assert resolve_edge("auto", a, b, only_b_reaches_a).side == "receiver"
    assert resolve_edge("sender", a, b, only_b_reaches_a).side is None
    assert resolve_edge("auto", a, b, lambda s, e: None).side is None
    token = dial_token("work")
    assert token not in ("work", dial_token("other"))
    assert token == dial_token("work")
    link = resolve_edge("receiver", a, b, both).peer_link("work")
    assert link is not None
    assert link.dialer_digest == token_digest(token)
