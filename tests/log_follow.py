"""``codebolt logs NODE -f`` run for real in the background, its lines read as they arrive.

Shared by the providers' log tests (docker, cloud-vm, e2b, hybrid): each follows a node's log
through the real command, sees a line written after it started, then stops it as a user would
(Ctrl-C, i.e. SIGINT) and checks that nothing it started is left running.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Follower", "logs"]


def logs(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``codebolt logs ARGS`` to its end. With Python's fault handler on: an e2b ``logs`` was
    seen twice (of many runs, under load) to end in SIGABRT after printing the whole log, with
    nothing on stderr; the next time, stderr says where."""
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "codebolt_topo.cli.main", "logs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LIBC_FATAL_STDERR_": "1"},  # glibc's aborts on stderr too
    )


class Follower:
    """``codebolt logs NODE -f`` in the background."""

    def __init__(self, node: str, *, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "faulthandler",
                "-m",
                "codebolt_topo.cli.main",
                "logs",
                node,
                "-f",
            ],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LIBC_FATAL_STDERR_": "1"},  # glibc's aborts on stderr too
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first line (from here on) for which ``wanted`` is true."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"logs -f ended: {self.stop()} {self.seen}")
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no such line within {timeout} s; seen: {self.seen[-10:]}")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C it; its exit status and standard error."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)  # it read to the end: the pipes can close
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, stderr
