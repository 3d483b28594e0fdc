"""``codebolt watch`` run as a real process in tests: its log lines collected as they come."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["Watcher", "wait_until"]


def wait_until(predicate: object, timeout: float, what: str, step: float = 0.1) -> None:
    """Poll ``predicate()`` until it is true; fail naming ``what`` after ``timeout`` (generous:
    a deadline for a hung test, never a measurement)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


class Watcher:
    """A ``codebolt watch --log-json`` process; :meth:`wait_for` a message matching a pattern."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", "watch", "--log-json", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)

    def messages(self) -> list[str]:
        """Every message so far (the JSON lines' ``message``; other lines as they are)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            try:
                self.lines.append(json.loads(line)["message"])
            except (ValueError, KeyError):
                self.lines.append(line.rstrip("\n"))
        return self.lines

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for m in map(re.compile(pattern).search, self.messages()) if m]
            if not found and self.process.poll() is not None:
                raise AssertionError(f"watch exited {self.process.returncode}: {self.lines}")
            return bool(found)

        try:
            wait_until(seen, timeout, f"{pattern!r} in the watch log")
        except AssertionError:
            raise AssertionError(f"no {pattern!r} in {self.messages()}") from None
        return found[0]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        self.messages()
