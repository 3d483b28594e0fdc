"""Progress of apply, destroy and watch on stderr, with the time each step takes.

The engine reports through a ``progress(message)`` callback, one line per event, most of them
``<node>: <what>``. A message whose first word ends in "ing" (``starting (local)``,
``stopping``, ``removing an orphan``…, but not ``running at``: a state) opens a step for that
node; the node's next message closes it, and says how long the step took when it took a second
or more (``b: running at ws://127.0.0.1:41234 (3.2 s)``). Providers that report their own stages
(building a wheel, uploading it) get the same treatment for free.

On a terminal the open steps are shown below the lines (only while there are any), each with a
spinner and its elapsed time, refreshed in place (rich's Live). Off a terminal (a CI log, a
file) nothing is redrawn: lines only, plus a ``still <step> (N s)`` line every
:data:`STILL_EVERY` seconds for a step that goes on, so a log shows where a slow apply spends
its time.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

__all__ = ["STILL_EVERY", "StepReporter"]

SHOW_AFTER = 1.0
"""Steps shorter than this are not timed on screen."""
STILL_EVERY = 10.0
"""Off a terminal, seconds between reminders that a step is still going on."""

_MESSAGE = re.compile(r"^([A-Za-z0-9_.-]+): (\S+)(.*)$")
_STATES = frozenset({"running"})
"""Words ending in "ing" that say where a node is, not what it is doing: they open no step."""


@dataclass(slots=True)
class _Step:
    node: str
    text: str
    started: float
    reminded: int = 0


class StepReporter:
    """A ``progress`` callback that times steps; use as a context manager."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        timestamps: bool = False,
        clock: Any = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.timestamps = timestamps
        if live is None:
            from codebolt_topo.cli.output import colour_on

            live = colour_on(self.stream)  # a terminal that is not NO_COLOR/dumb
        self.live = live
        self.clock = clock
        self.open: dict[str, _Step] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._view: Any = None

    def __enter__(self) -> StepReporter:
        if not self.live:
            self._ticker = threading.Thread(
                target=self._remind, daemon=True, name="progress-reminders"
            )
            self._ticker.start()
        return self

    def _show_open_steps(self) -> None:
        """On a terminal, draw the open steps below the lines while there are any, and nothing
        otherwise: a confirmation prompt (asked between steps) must not share the screen with
        a redrawn region."""
        if not self.live:
            return
        if self.open and self._view is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, stderr=self.stream is sys.stderr, emoji=False)
            self._view = Live(
                _OpenSteps(self),
                console=console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._view.start()
        elif not self.open and self._view is not None:
            self._view.stop()
            self._view = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None
        if self._view is not None:
            self._view.stop()
            self._view = None

    def __call__(self, message: str) -> None:
        now = self.clock()
        with self._lock:
            match = _MESSAGE.match(message)
            line = message
            if match:
                node, verb = match[1], match[2]
                previous = self.open.pop(node, None)
                if previous is not None and now - previous.started >= SHOW_AFTER:
                    line = f"{message} ({now - previous.started:.1f} s)"
                if verb.endswith("ing") and verb not in _STATES:
                    self.open[node] = _Step(node, message.split(": ", 1)[1], now)
            self._write(line)
            self._show_open_steps()

    def _write(self, line: str) -> None:
        if self.timestamps:
            line = f"{time.strftime('%H:%M:%S')} {line}"
        if self._view is not None:
            self._view.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def _remind(self) -> None:
        while not self._stop.wait(0.25):
            now = self.clock()
            with self._lock:
                for step in self.open.values():
                    due = int((now - step.started) // STILL_EVERY)
                    if due > step.reminded:
                        step.reminded = due
                        self._write(f"{step.node}: still {step.text} ({now - step.started:.0f} s)")

    def snapshot(self) -> list[tuple[str, str, float]]:
        """Open steps as (node, step, elapsed seconds), oldest first."""
        now = self.clock()
        with self._lock:
            steps = sorted(self.open.values(), key=lambda s: s.started)
            return [(s.node, s.text, now - s.started) for s in steps]


class _OpenSteps:
    """What the terminal shows below the lines: a spinner and elapsed time per open step."""

    def __init__(self, reporter: StepReporter) -> None:
        self.reporter = reporter
        self.spinners: dict[tuple[str, str], Any] = {}

    def __rich__(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        shown = {}
        for node, text, elapsed in self.reporter.snapshot():
            if elapsed >= SHOW_AFTER:
                spinner = self.spinners.get((node, text)) or Spinner("dots")
                shown[(node, text)] = spinner
                grid.add_row(spinner, f"{node}: {text}", f"{elapsed:.0f} s")
        self.spinners = shown  # one spinner per step, kept while it runs: it turns
        return grid
