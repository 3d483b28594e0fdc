"""Run the narrative entry point on a node, through the node protocol's exec channel.

The orchestrator never opens a second transport to move history: every operation is one
``exec`` on the node (``python -m codebolt_topo.narrative ...``, see
:mod:`~codebolt_topo.narrative.entry`), over a connection that is already authenticated and
carries binary frames. Bundles come back as the command's stdout and go in as its stdin.

Which Python runs it is the launcher's business (:mod:`~codebolt_topo.client.narrative_launch`,
shared with the nodes that sync along their edges themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from codebolt_topo.client.narrative_launch import LAUNCHER, narrative_argv
from codebolt_topo.narrative.errors import NarrativeError
from codebolt_topo.narrative.locate import HOLDS_HISTORY

if TYPE_CHECKING:
    from codebolt_topo.client import NodeClient

__all__ = ["LAUNCHER", "NodeNarrative"]

_CANCEL_WAIT = 5.0
"""Seconds spent telling the node to cancel the job of a call that was given up."""


class NodeNarrative:
    """The narrative store of node *node*, driven through *client* (any node that routes to it).

    *workspace* and *state_dir* are passed through when given (relative to the node's workspace);
    by default the entry point uses the node's workspace and the store beside it. *env* is added
    to every request's environment (``CODEBOLT_PYTHON`` for a node known to share our Python).
    """

    def __init__(
        self,
        client: NodeClient,
        node: str,
        *,
        workspace: str | None = None,
        state_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = 600.0,
    ) -> None:
        self.client = client
        self.node = node
        self.env = dict(env or {})
        self.timeout = timeout
        self._common = [
            *(["--workspace", workspace] if workspace else []),
            *(["--state-dir", state_dir] if state_dir else []),
        ]

    async def run(self, command: str, *args: str, stdin: bytes | None = None) -> bytes:
        """Run one entry-point command on the node; its stdout, or NarrativeError naming why.

        When the caller gives up (Ctrl-C, a timeout around this call: the task is cancelled),
        the job on the node is cancelled too rather than left to run for its lease.
        """
        argv = narrative_argv(command, *self._common, *args)
        handle = await self.client.exec(
            self.node, argv=argv, env=self.env, timeout=self.timeout, stdin=stdin
        )
        try:
            result = await handle.result()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(handle.cancel()), _CANCEL_WAIT)
            raise
        result.raise_for_failures()
        outcome = result[self.node]
        code = outcome.exit.code if outcome.exit else None
        if code != 0:
            lines = outcome.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = lines[-1].removeprefix("error: ") if lines else f"exit status {code}"
            raise NarrativeError(f"node {self.node!r}: narrative {command}: {reason}")
        return outcome.stdout

    async def call(self, command: str, *args: str, stdin: bytes | None = None) -> Any:
        """:meth:`run` for the commands that print one JSON document."""
        out = await self.run(command, *args, stdin=stdin)
        try:
            return json.loads(out)
        except ValueError as exc:
            raise NarrativeError(f"node {self.node!r}: narrative {command}: bad output") from exc

    async def holds_nothing(self) -> bool:
        """Whether the node's store holds no history at all, told by a shell in its workspace
        (:data:`~codebolt_topo.narrative.locate.HOLDS_HISTORY`) before a Python is started to
        export it. False whenever it cannot tell (another store was named, no ``find``)."""
        if self._common:
            return False
        argv = ["/bin/sh", "-c", HOLDS_HISTORY]
        result = await (await self.client.exec(self.node, argv=argv, timeout=60.0)).result()
        result.raise_for_failures()
        outcome = result[self.node]
        return bool(outcome.exit and outcome.exit.code == 0 and outcome.stdout == b"empty\n")

    async def heads(self, *, remotes: bool = True) -> dict[str, str]:
        """Thread tips (and, with *remotes*, diverged copies)."""
        heads: dict[str, str] = await self.call("heads", *(["--remotes"] if remotes else []))
        return heads

    async def have(self) -> list[str]:
        """Commits this node holds, as a sender's ``have`` (see NarrativeStore.have)."""
        have: list[str] = await self.call("have")
        return have

    async def export(self, have: Iterable[str], *, remotes: bool = True) -> bytes:
        """A bundle of every thread, incremental against *have*; empty when the store is."""
        flags = ["--have", "-", *(["--remotes"] if remotes else [])]
        return await self.run("export", *flags, stdin=json.dumps(sorted(set(have))).encode())

    async def import_bundle(self, data: bytes, source_env: str) -> dict[str, Any]:
        """Import *data* as received from *source_env*; the report as JSON."""
        report: dict[str, Any] = await self.call(
            "import", "--source-env", source_env, "--copies", stdin=data
        )
        return report

    async def snapshot(self, objective: str, thread: str, run: str, **names: str) -> dict[str, Any]:
        """Snapshot the node's workspace; *names*: name, message, objective_name, …"""
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in names.items() if value]
        info: dict[str, Any] = await self.call(
            "snapshot", "--objective", objective, "--thread", thread, "--run", run, *flags
        )
        return info
