"""Progress lines say how long each step took, and tables are never cut when piped (issue 17,
item 4). The reporter is driven with a fake clock; the terminal view is rendered with rich."""

from __future__ import annotations

import io
import time

from rich.console import Console
from rich.table import Table

from codebolt_topo.cli.progress import STILL_EVERY, StepReporter, _OpenSteps
from codebolt_topo.cli.tables import table_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_step_of_a_second_or_more_says_how_long_it_took() -> None:
    clock, out = Clock(), io.StringIO()
    with StepReporter(out, live=False, clock=clock) as progress:
        progress("a: starting (local)")
        progress("b: starting (local)")
        clock.now += 0.4
        progress("b: running at ws://127.0.0.1:2")
        clock.now += 2.8
        progress("a: running at ws://127.0.0.1:1")
        progress("a: configured (generation 1)")
        progress("targeting is in effect: 2 other change(s) are left for a full apply")
    assert out.getvalue().splitlines() == [
        "a: starting (local)",
        "b: starting (local)",
        "b: running at ws://127.0.0.1:2",  # 0.4 s: not worth a figure
        "a: running at ws://127.0.0.1:1 (3.2 s)",
        "a: configured (generation 1)",  # "running" closed the step: nothing open to time
        "targeting is in effect: 2 other change(s) are left for a full apply",
    ]


def test_off_a_terminal_a_long_step_is_reminded_every_few_seconds() -> None:
    clock, out = Clock(), io.StringIO()
    with StepReporter(out, live=False, clock=clock, timestamps=False) as progress:
        progress("x: starting (cloud-vm)")
        clock.now += STILL_EVERY + 0.5
        deadline = time.monotonic() + 5
        while "still" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        progress("x: running at ws://127.0.0.1:9")
    assert out.getvalue().splitlines() == [
        "x: starting (cloud-vm)",
        f"x: still starting (cloud-vm) ({STILL_EVERY:.0f} s)",
        f"x: running at ws://127.0.0.1:9 ({STILL_EVERY + 0.5:.1f} s)",
    ]


def test_watch_lines_carry_the_time_of_day() -> None:
    out = io.StringIO()
    with StepReporter(out, live=False, timestamps=True) as progress:
        progress("c: failed (process 12 is gone)")
    line = out.getvalue().strip()
    assert line.endswith(" c: failed (process 12 is gone)")
    assert time.strptime(line.split(" ")[0], "%H:%M:%S")


def test_the_terminal_view_shows_open_steps_with_their_elapsed_time() -> None:
    clock = Clock()
    reporter = StepReporter(io.StringIO(), live=False, clock=clock)
    reporter("x: starting (cloud-vm)")
    reporter("y: starting (local)")
    clock.now += 12.0
    reporter("y: running at ws://127.0.0.1:3")
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(_OpenSteps(reporter))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "x: starting (cloud-vm) 12 s" in shown
    assert "y:" not in shown


def test_a_piped_table_keeps_every_character() -> None:
    endpoint = "ws://[2001:db8:1234:5678:9abc:def0:1234:5678]:41234"
    table = Table(title="topology wide (serial 3)", title_justify="left")
    for column in ("node", "provider", "state", "since", "heartbeat", "hops", "endpoint", "pid"):
        table.add_column(column)
    for name in ("a-node-with-a-long-name", "b"):
        table.add_row(
            name,
            "local",
            "FAILED (process 123456 is gone, it was killed)",
            "3s ago",
            "none, last 12s ago",
            "3",
            endpoint,
            "123456",
        )
    text = table_text(table)
    assert text.count(endpoint) == 2
    assert "FAILED (process 123456 is gone, it was killed)" in text
    assert "…" not in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_the_terminal_view_is_drawn_only_while_a_step_is_open() -> None:
    """Nothing is redrawn between steps, when apply asks for confirmation."""
    out = io.StringIO()
    with StepReporter(out, live=True) as progress:
        assert progress._view is None
        progress("a: starting (local)")
        assert progress._view is not None
        progress("a: running at ws://127.0.0.1:1")
        assert progress._view is None
    assert "a: running at ws://127.0.0.1:1" in out.getvalue()
