"""``codebolt status`` off a terminal writes the table itself (cli/tables.plain_table): the same
characters rich prints for it, brackets, IPv6 endpoints, failures and wide cells included."""

from __future__ import annotations

import io

from codebolt_topo.cli.status_view import print_status, render_table
from codebolt_topo.cli.tables import table_text
from codebolt_topo.engine.status import NodeStatus
from codebolt_topo.model.state import State


def _row(name: str, **changes: object) -> NodeStatus:
    fields: dict[str, object] = {
        "name": name,
        "provider": "local",
        "lifecycle": "RUNNING",
        "since": None,
        "url": "ws://127.0.0.1:41075",
        "handle": {"pid": 3751},
        "alive": True,
        "reason": "",
        "heartbeat_ms": 1.25,
        "heartbeat_error": "",
        "hops": 0,
        **changes,
    }
    return NodeStatus(**fields)  # type: ignore[arg-type]


ROWS = [
    _row("a"),
    _row("gpu-worker-17", hops=3, heartbeat_ms=1234.5),
    _row("gone", alive=False, reason="process [12] is gone", heartbeat_ms=None, hops=None),
    _row("v6", url="ws://[2001:db8:1234::1]:3100", handle={"container": "3f2a9c"}),
    _row("hung", heartbeat_error="no answer within 2 s [x]", heartbeat_ms=None),
    _row("new", lifecycle="STARTING", url=None, handle={}, heartbeat_ms=None, hops=None),
    _row("naïve-ünïcode", provider="docker"),
    _row("节点-wide"),
]


def _plain(state: State, rows: list[NodeStatus]) -> str:
    out = io.StringIO()
    print_status(state, rows, out)
    return out.getvalue()


def test_plain_status_is_what_rich_prints() -> None:
    state = State(topology="demo", serial=42)
    assert _plain(state, ROWS) == table_text(render_table(state, ROWS))
    assert "FAILED (process [12] is gone)" in _plain(state, ROWS)
    assert "ws://[2001:db8:1234::1]:3100" in _plain(state, ROWS)


def test_plain_status_of_no_rows_and_of_many() -> None:
    state = State(topology="empty")
    assert _plain(state, []) == table_text(render_table(state, []))
    many = [_row(f"w{i}", hops=i % 7, heartbeat_ms=i / 3) for i in range(300)]
    assert _plain(state, many) == table_text(render_table(state, many))
