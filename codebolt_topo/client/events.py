"""What a request yields, event by event (:data:`Event`), and what it comes to in the end
(:class:`ExecResult`): plain data, so callers can match on them and keep them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from codebolt_topo.errors import ExecError

__all__ = [
    "Event",
    "ExecResult",
    "Exit",
    "Failed",
    "NodeResult",
    "Notification",
    "Output",
    "SnapshotRequest",
    "Started",
]


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Ask the executing node to record its workspace ``before``, ``after`` or ``both`` (around
    the job), under the caller's objective, thread and run; the result is :attr:`Exit.snapshots`.
    ``name`` names the snapshots (default: the command, and the exit status after)."""

    objective: str
    thread: str
    run: str
    when: Literal["before", "after", "both"] = "both"
    name: str | None = None

    def to_wire(self) -> dict[str, str]:
        """The ``snapshot`` field of an ``exec`` (``docs/protocol.md``)."""
        wire = {
            "when": self.when,
            "objective": self.objective,
            "thread": self.thread,
            "run": self.run,
        }
        if self.name:
            wire["name"] = self.name
        return wire


@dataclass(frozen=True, slots=True)
class Started:
    """A job started on ``node`` as process ``pid``; ``path`` lists the hops, entry first."""

    node: str
    pid: int | None
    path: list[str]


@dataclass(frozen=True, slots=True)
class Output:
    """A chunk of a job's stdout or stderr, at byte ``offset`` of that stream."""

    node: str
    stream: Literal["stdout", "stderr"]
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification from the job's process (CODEBOLT_NOTIFY_FD) or a plugin."""

    node: str
    kind: str
    data: Any


@dataclass(frozen=True, slots=True)
class Exit:
    """A job ended: ``code`` (None when killed by ``signal``), duration in seconds.

    ``snapshots``: what the node recorded for a :class:`SnapshotRequest`, in order; each is the
    narrative store's description (``snapshot_id``, ``commit``, ``name``, ``objective``, ``thread``,
    ``run``, …) with ``when``, or ``when`` and ``error`` where it could not be taken."""

    node: str
    code: int | None
    signal: str | None
    duration: float
    timed_out: bool
    cancelled: bool
    snapshots: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Failed:
    """A job (``node`` target) or the whole request (node None) failed at ``hop``."""

    node: str | None
    hop: str | None
    code: str
    message: str

    def error(self) -> ExecError:
        """This failure as an exception."""
        return ExecError(self.message, node=self.node, hop=self.hop, code=self.code)


Event = Started | Output | Notification | Exit | Failed


@dataclass(slots=True)
class NodeResult:
    """Everything one target produced."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit: Exit | None = None
    failure: Failed | None = None


@dataclass(slots=True)
class ExecResult:
    """Per-target results of a request, plus failures that named no target."""

    nodes: dict[str, NodeResult] = field(default_factory=dict)
    failures: list[Failed] = field(default_factory=list)

    def __getitem__(self, node: str) -> NodeResult:
        return self.nodes[node]

    def raise_for_failures(self) -> None:
        """Raise the first failure as ExecError (a non-zero exit is not a failure)."""
        for failed in self.failures:
            raise failed.error()
