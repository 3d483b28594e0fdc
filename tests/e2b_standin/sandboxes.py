"""The stand-in's sandboxes: a directory and real local processes each (the I/O half).

A sandbox is a temporary directory that is its processes' ``HOME`` and working directory. It
has no network of its own: its processes share this machine's, so two nodes in two sandboxes
must not ask for the same port. The template's environment is written into the sandbox's
``.bash_profile`` (envd runs commands with ``bash -l``, which reads it after ``/etc/profile``),
so a template's ``PATH`` survives the login shell. Every process carries
``E2B_STANDIN_SANDBOX=<id>``, which is how killing a sandbox finds all of them, daemons that
started their own sessions included: a VM that ends takes everything with it.

Protocols live elsewhere (:mod:`.control`, :mod:`.envd`): this module knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from codebolt_topo.providers.processes import scan_marked

__all__ = ["Process", "Sandbox", "Sandboxes"]

MARKER = "E2B_STANDIN_SANDBOX"


@dataclass
class Process:
    """One process started through envd: its output so far and how it ended."""

    pid: int
    proc: asyncio.subprocess.Process
    chunks: list[tuple[str, bytes]] = field(default_factory=list)
    exit_code: int | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _drain(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while data := await stream.read(65536):
            async with self.changed:
                self.chunks.append((name, data))
                self.changed.notify_all()

    async def _watch(self) -> None:
        await asyncio.gather(
            self._drain(self.proc.stdout, "stdout"), self._drain(self.proc.stderr, "stderr")
        )
        code = await self.proc.wait()
        async with self.changed:
            self.exit_code = code
            self.changed.notify_all()

    async def follow(self) -> AsyncIterator[tuple[str, bytes] | int]:
        """Every output chunk from the start, then the exit code. A follower that goes away
        changes nothing for the process (envd keeps it running)."""
        sent = 0
        while True:
            async with self.changed:
                while len(self.chunks) <= sent and self.exit_code is None:
                    await self.changed.wait()
                pending, code = self.chunks[sent:], self.exit_code
            for chunk in pending:
                yield chunk
            sent += len(pending)
            if code is not None and sent == len(self.chunks):
                yield code
                return


@dataclass
class Sandbox:
    id: str
    template: str
    metadata: dict[str, str]
    envs: dict[str, str]
    root: Path
    access_token: str
    started_at: float
    end_at: float
    state: str = "running"
    processes: dict[int, Process] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def path(self, path: str) -> Path:
        """``path`` inside the sandbox: relative to its home, absolute ones under its root."""
        return self.root / path.lstrip("/") if path.startswith("/") else self.root / path

    async def spawn(
        self, cmd: str, args: list[str], envs: dict[str, str], cwd: str | None
    ) -> Process:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "USER": "user",
            "LANG": "C.UTF-8",
            **self.envs,
            **envs,
            MARKER: self.id,
        }
        proc = await asyncio.create_subprocess_exec(
            cmd,
            *args,
            cwd=self.path(cwd) if cwd else self.root,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        process = Process(pid=proc.pid, proc=proc)
        self.processes[proc.pid] = process
        task = asyncio.create_task(process._watch())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return process

    def kill(self) -> None:
        self.state = "killed"
        for found in scan_marked({MARKER: self.id}, lambda cmdline: True):
            with contextlib.suppress(ProcessLookupError):
                os.kill(found.pid, signal.SIGKILL)
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Sandboxes:
    """Every sandbox of one stand-in, and the templates it knows (name -> environment)."""

    def __init__(self, templates: dict[str, dict[str, str]], domain: str) -> None:
        self.templates = templates
        self.domain = domain
        self.by_id: dict[str, Sandbox] = {}
        self.base = Path(tempfile.mkdtemp(prefix="e2b-standin-"))

    def create(
        self, template: str, timeout: int, metadata: dict[str, str], envs: dict[str, str]
    ) -> Sandbox:
        if template not in self.templates:
            raise KeyError(template)
        sandbox_id = "i" + secrets.token_hex(9)
        root = self.base / sandbox_id
        root.mkdir()
        profile = "".join(
            f"export {name}={shlex.quote(value)}\n"
            for name, value in self.templates[template].items()
        )
        (root / ".bash_profile").write_text(profile)
        now = time.time()
        sandbox = Sandbox(
            id=sandbox_id,
            template=template,
            metadata=metadata,
            envs=envs,
            root=root,
            access_token=secrets.token_urlsafe(24),
            started_at=now,
            end_at=now + timeout,
        )
        self.by_id[sandbox_id] = sandbox
        return sandbox

    def running(self, sandbox_id: str) -> Sandbox | None:
        sandbox = self.by_id.get(sandbox_id)
        return sandbox if sandbox is not None and sandbox.state == "running" else None

    def kill(self, sandbox_id: str) -> bool:
        sandbox = self.running(sandbox_id)
        if sandbox is None:
            return False
        sandbox.kill()
        return True

    def expire(self) -> None:
        """Kill sandboxes whose timeout has passed, as e2b does."""
        now = time.time()
        for sandbox in list(self.by_id.values()):
            if sandbox.state == "running" and sandbox.end_at <= now:
                sandbox.kill()

    def close(self) -> None:
        for sandbox in self.by_id.values():
            if sandbox.state == "running":
                sandbox.kill()
        shutil.rmtree(self.base, ignore_errors=True)
