"""Plans seen and narrowed without running anything (issue 17, items 1-3): structured reasons
with env values masked, ``--target``/``--replace`` narrowing, saved-plan checks, the events
journal's bound, and how ``logs`` dates a node's lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from codebolt_topo.engine import events
from codebolt_topo.engine.events import EventJournal
from codebolt_topo.engine.logs import _timed, parse_since
from codebolt_topo.engine.planfile import SavedPlan, is_saved_plan, load_plan
from codebolt_topo.engine.reasons import masked_plan, plan_document
from codebolt_topo.engine.targeting import REPLACE_REASON, narrow_plan
from codebolt_topo.errors import ConfigError, StateError
from codebolt_topo.model.state import Lifecycle, NodeState, State
from codebolt_topo.plan.desired import DesiredNode, desired_nodes
from codebolt_topo.plan.diff import Plan, diff
from codebolt_topo.plan.render import plan_as_text
from codebolt_topo.plan.validate import validate_file

BASE = (
    "name: views\nnodes:\n  a: {}\n  b: {env: {MODE: slow, KEY: k1}}\n  c: {}\n"
    "edges: [a -> b -> c]\n"
)


def _desired(tmp_path: Path, text: str) -> dict[str, DesiredNode]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return desired_nodes(validate_file(path))


def _applied(desired: dict[str, DesiredNode]) -> State:
    """The state a full apply of ``desired`` leaves."""
    nodes = {}
    for name, want in desired.items():
        node = NodeState(
            name=name,
            provider=want.spec.provider,
            admin_token="t",
            launch=want.launch_settings,
            launch_hash=want.launch_hash,
            runtime_hash="r",
            wiring=json.loads(json.dumps(want.wiring)),
            handle={"pid": 1},
            host="127.0.0.1",
            port=4000 + len(nodes),
        )
        node.move_to(Lifecycle.STARTING)
        node.move_to(Lifecycle.RUNNING)
        nodes[name] = node
    return State(topology="views", nodes=nodes)


def _plan(tmp_path: Path, text: str, state: State) -> Plan:
    return diff(_desired(tmp_path, text), state, {})


def test_env_changes_are_reasons_with_field_before_after_and_masked_values(tmp_path: Path) -> None:
    state = _applied(_desired(tmp_path, BASE))
    plan = _plan(
        tmp_path, BASE.replace("MODE: slow", "MODE: fast").replace("KEY: k1", "NEW: n"), state
    )
    [replace] = [a for a in plan_document(plan)["actions"] if a["node"] == "b"]
    assert replace["action"] == "replace"
    assert [(r["field"], r["before"], r["after"]) for r in replace["reasons"]] == [
        ("env.KEY", "(sensitive)", None),
        ("env.MODE", "(sensitive)", "(sensitive)"),
        ("env.NEW", None, "(sensitive)"),
    ]
    shown = plan_document(plan, show_sensitive=True)["actions"][0]["reasons"]
    assert [(r["field"], r["before"], r["after"]) for r in shown][1] == ("env.MODE", "slow", "fast")
    text = plan_as_text(masked_plan(plan))
    assert "env.MODE: (sensitive) -> (sensitive)" in text
    assert "slow" not in text
    assert "fast" not in text
    assert "k1" not in text
    assert "slow" in str(plan.actions[0].messages)  # the planner's own wording, unmasked


def test_other_launch_and_wiring_reasons_carry_their_values(tmp_path: Path) -> None:
    state = _applied(_desired(tmp_path, BASE))
    changed = BASE.replace("  c: {}", "  c: {port: 4100}").replace(
        "edges: [a -> b -> c]", "edges: [a -> b -> c, a -> c]"
    )
    document = plan_document(_plan(tmp_path, changed, state))
    reasons = {a["node"]: a["reasons"] for a in document["actions"]}
    assert {
        "field": "port",
        "before": None,
        "after": 4100,
        "message": "port: (none) -> 4100",
    } in reasons["c"]
    peers = next(r for r in reasons["a"] if r["field"] == "peers")
    assert (peers["before"], peers["after"], peers["message"]) == (["b"], ["b", "c"], "peers +c")


def test_replace_forces_a_replacement_and_updates_the_senders(tmp_path: Path) -> None:
    desired = _desired(tmp_path, BASE)
    state = _applied(desired)
    unchanged = diff(desired, state, {})
    assert unchanged.actions == ()
    forced = narrow_plan(unchanged, state, replace_nodes=["b"])
    assert [(a.kind.value, a.node, a.messages) for a in forced.plan.actions] == [
        ("replace", "b", (REPLACE_REASON,)),
        ("update", "a", ("peer endpoint changes: b",)),
    ]
    assert forced.configure is None
    with pytest.raises(ConfigError, match="--replace 'zz': no such node"):
        narrow_plan(unchanged, state, replace_nodes=["zz"])


def test_target_keeps_the_target_and_what_must_follow_it(tmp_path: Path) -> None:
    state = _applied(_desired(tmp_path, BASE))
    grown = BASE.replace("  c: {}", "  c: {}\n  d: {}\n  e: {}").replace(
        "edges: [a -> b -> c]", "edges: [a -> b -> c -> d]"
    )
    plan = _plan(tmp_path, grown, state)
    assert sorted(a.node for a in plan.actions) == ["a", "b", "c", "d", "e"]
    narrowed = narrow_plan(plan, state, targets=["d"])
    kept = [(a.kind.value, a.node) for a in narrowed.plan.actions]
    # c sends to d; a and b route to it; e (unrelated) waits
    assert kept == [("create", "d"), ("update", "a"), ("update", "b"), ("update", "c")]
    assert narrowed.left_out == 1
    assert narrowed.configure == frozenset({"a", "b", "c", "d"})


def test_target_names_every_replica_of_a_counted_node(tmp_path: Path) -> None:
    state = _applied(_desired(tmp_path, BASE))
    counted = BASE.replace("  c: {}", "  c: {}\n  w: {count: 2}\n  x: {}")
    narrowed = narrow_plan(_plan(tmp_path, counted, state), state, targets=["w"])
    assert [a.node for a in narrowed.plan.actions] == ["w-1", "w-2"]


def test_a_saved_plan_checks_state_file_and_actions(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(BASE)
    state = _applied(_desired(tmp_path, BASE))
    plan = _plan(tmp_path, BASE.replace("slow", "fast"), state)
    path.write_text(BASE.replace("slow", "fast"))
    saved = SavedPlan.of(
        masked_plan(plan),
        file=path,
        lineage=state.lineage,
        serial=state.serial,
        variables={"n": 2},
        targets=["b"],
    )
    saved.write(tmp_path / "p.plan")
    assert is_saved_plan(tmp_path / "p.plan")
    assert not is_saved_plan(path)
    loaded = load_plan(tmp_path / "p.plan")
    assert loaded == saved
    assert "fast" not in (tmp_path / "p.plan").read_text()

    loaded.check_state(exists=True, lineage=state.lineage, serial=state.serial)
    with pytest.raises(StateError, match="made at state serial"):
        loaded.check_state(exists=True, lineage=state.lineage, serial=state.serial + 1)
    with pytest.raises(StateError, match="made for state lineage"):
        loaded.check_state(exists=True, lineage="other", serial=state.serial)
    loaded.check_file()
    loaded.check_actions(plan)
    with pytest.raises(StateError, match="would now change differently \\(no longer replace b"):
        loaded.check_actions(Plan(topology="views", actions=()))
    path.write_text(BASE)
    with pytest.raises(StateError, match="changed since the plan was made"):
        loaded.check_file()

    (tmp_path / "old.plan").write_text(json.dumps({"format": "codebolt-plan", "version": 99}))
    with pytest.raises(ConfigError, match="version 99 is not supported"):
        load_plan(tmp_path / "old.plan")


def test_the_events_journal_keeps_its_newest_half_past_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 2000)
    journal = EventJournal(tmp_path)
    for number in range(100):
        journal.record("a", "configured", f"generation {number}")
    kept = journal.read("a")
    assert journal.path.stat().st_size <= 2000 + 200
    assert kept[-1].message == "generation 99"
    assert 5 < len(kept) < 100
    assert [int(e.message.split()[1]) for e in kept] == list(range(100 - len(kept), 100))
    assert journal.path.stat().st_mode & 0o077 == 0


def test_logs_date_each_line_and_parse_since() -> None:
    lines = [
        b"Traceback (most recent call last):",
        b"  boom",
        b"2026-11-27 12:00:01,500 ERROR x: failed",
        b"2026-11-27 12:00:02,000 INFO y",
        b"trailing without a stamp",
    ]
    timed = _timed("n", lines, fallback=1.0)
    stamp = time.mktime(time.strptime("2026-11-27 12:00:01", "%Y-%m-%d %H:%M:%S"))
    assert [line.at for line in timed] == [stamp + 0.5, stamp + 0.5, stamp + 0.5, stamp + 1.0, 1.0]
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("90s", now=1000.0) == 910.0
    assert parse_since("2026-11-27T12:00:01") == stamp
    with pytest.raises(ConfigError, match="--since 'soon'"):
        parse_since("soon")


def test_logs_of_a_node_elsewhere_come_from_its_providers_log_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider offering ``logs`` (engine.logs.LogReader) serves ``codebolt logs`` for its
    nodes; one without it gets an error naming the provider, not an empty log."""
    import asyncio

    from codebolt_topo.engine.logs import node_log
    from codebolt_topo.engine.runner import Engine
    from codebolt_topo.engine.statefile import StateFile

    path = tmp_path / "topology.yaml"
    path.write_text("name: away\nnodes: {box: {}}\n")
    state = State(topology="away")
    state.nodes["box"] = NodeState(
        name="box",
        provider="local",
        admin_token="t",
        launch={},
        launch_hash="h",
        handle={"container": "c1"},
    )
    state_file = StateFile(tmp_path / ".codebolt", "away")
    with state_file.locked("test"):
        state_file.save(state)

    class Elsewhere:
        async def logs(self, handle: dict[str, object], *, follow: bool):  # type: ignore[no-untyped-def]
            assert handle == {"container": "c1"}
            for line in ("2026-11-27 12:00:00,000 INFO one", "2026-11-27 12:00:01,000 INFO two"):
                yield line + "\n"

    async def lines(**options: object) -> list[str]:
        return [line.text async for line in node_log(path, "box", **options)]  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "provider", lambda self, name, state: Elsewhere())
    assert asyncio.run(lines()) == [
        "2026-11-27 12:00:00,000 INFO one",
        "2026-11-27 12:00:01,000 INFO two",
    ]
    assert asyncio.run(lines(tail=1)) == ["2026-11-27 12:00:01,000 INFO two"]
    monkeypatch.setattr(Engine, "provider", lambda self, name, state: object())
    with pytest.raises(ConfigError, match="whose logs stay where the node runs"):
        asyncio.run(lines())
