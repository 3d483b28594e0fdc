"""The control messages, typed: one ``TypedDict`` per message type.

What :func:`codebolt_topo.wire.codec.decode` accepts, as type checkers and readers see it. At run
time a message stays the plain ``dict`` pydantic-core decoded (no copy, no validation beyond the
codec's table: every hop decodes and re-encodes each relayed message). ``docs/protocol.md``
describes the same fields, and ``tests/wire/test_protocol_doc.py`` holds the three together: a
field added to one of them and not to the others fails it.

Requests travel down (caller to executing node), events travel up. ``info`` is both a request
and its reply; the reply is :class:`InfoReply`.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired[...] from live
# annotations only (Python 3.11), and the required keys are what the codec's table is held to.
from typing import Any, Final, Literal, NotRequired, TypedDict

__all__ = [
    "ERROR_CODES",
    "MESSAGE_TYPES",
    "Ack",
    "Attach",
    "Cancel",
    "Configure",
    "Configured",
    "Detach",
    "Done",
    "Eof",
    "ErrorMessage",
    "Exec",
    "ExitMessage",
    "Info",
    "InfoReply",
    "Issued",
    "Notify",
    "Offsets",
    "Presence",
    "PresenceReply",
    "Signal",
    "SnapshotSpec",
    "Started",
    "Sync",
    "Synced",
]

ERROR_CODES: Final = frozenset(
    {
        "bad-request",
        "forbidden",
        "gateway-inactive",
        "unreachable",
        "hop-limit",
        "loop",
        "not-found",
        "spawn-failed",
        "cancelled",
        "peer-lost",
        "internal",
        "truncated",
        "conflict",
        "over-limit",
        "replayed",
    }
)


class Offsets(TypedDict, total=False):
    """Where a caller's copy of one target's streams ends (``resume``)."""

    stdout: int
    stderr: int


class SnapshotSpec(TypedDict):
    """``exec``'s ``snapshot``: the executing node records its workspace around the job."""

    when: Literal["before", "after", "both"]
    objective: str
    thread: str
    run: str
    name: NotRequired[str]


class Issued(TypedDict):
    """When a request was issued, on the receiving node's request clock (the replay guard)."""

    epoch: str
    at: float


# Requests (down) ------------------------------------------------------------------------------
class Exec(TypedDict):
    t: Literal["exec"]
    id: str
    target: str | list[str]
    argv: NotRequired[list[str]]
    shell: NotRequired[str]
    env: NotRequired[dict[str, str]]
    cwd: NotRequired[str | None]
    timeout: NotRequired[float | None]
    stdin: NotRequired[bool]
    hops: NotRequired[int]
    path: NotRequired[list[str]]
    origin: NotRequired[str]
    digest: NotRequired[str]
    resume: NotRequired[dict[str, Offsets]]
    snapshot: NotRequired[SnapshotSpec]
    issued: NotRequired[Issued]


class Attach(TypedDict):
    t: Literal["attach"]
    id: str
    target: str | list[str]
    hops: NotRequired[int]
    path: NotRequired[list[str]]
    origin: NotRequired[str]
    resume: NotRequired[dict[str, Offsets]]


class Ack(TypedDict):
    t: Literal["ack"]
    ch: int
    stdout: int
    stderr: int


class Detach(TypedDict):
    t: Literal["detach"]
    id: str


class Cancel(TypedDict):
    t: Literal["cancel"]
    id: str


class Signal(TypedDict):
    t: Literal["signal"]
    ch: int
    signal: str


class Eof(TypedDict):
    t: Literal["eof"]
    ch: int


class Notify(TypedDict):
    """Both ways: down to the executing node's plugins (``id`` or ``ch``), up to the caller."""

    t: Literal["notify"]
    kind: str
    data: NotRequired[Any]
    ch: NotRequired[int]
    id: NotRequired[str]
    node: NotRequired[str | None]


class Configure(TypedDict):
    t: Literal["configure"]
    config: dict[str, Any]
    id: NotRequired[str]


class Info(TypedDict):
    t: Literal["info"]
    id: NotRequired[str]
    detail: NotRequired[bool]


class Presence(TypedDict):
    """Admin only: how this node sees ``node``'s connections (a joined node's heartbeat)."""

    t: Literal["presence"]
    node: str
    id: NotRequired[str]
    timeout: NotRequired[float]


class Sync(TypedDict):
    """Admin only, to the sender of an edge: move narrative history along it, node to node."""

    t: Literal["sync"]
    id: str
    peer: str
    direction: Literal["push", "pull"]


# Events (up) ----------------------------------------------------------------------------------
class Started(TypedDict):
    t: Literal["started"]
    id: str
    ch: int
    node: str
    pid: NotRequired[int | None]
    path: NotRequired[list[str]]
    window: NotRequired[int]


class ExitMessage(TypedDict):
    t: Literal["exit"]
    ch: int
    node: str
    code: NotRequired[int | None]
    signal: NotRequired[str | None]
    duration: NotRequired[float]
    timed_out: NotRequired[bool]
    cancelled: NotRequired[bool]
    stdout_bytes: NotRequired[int]
    stderr_bytes: NotRequired[int]
    id: NotRequired[str]
    done: NotRequired[bool]
    snapshots: NotRequired[list[dict[str, Any]]]


class ErrorMessage(TypedDict):
    t: Literal["error"]
    code: str
    message: str
    id: NotRequired[str | None]
    node: NotRequired[str | None]
    hop: NotRequired[str | None]
    ch: NotRequired[int]
    done: NotRequired[bool]


class Done(TypedDict):
    t: Literal["done"]
    id: str


class Configured(TypedDict):
    t: Literal["configured"]
    generation: int
    id: NotRequired[str]


class PresenceReply(TypedDict, total=False):
    """The answer to ``presence`` (node/presence.py)."""

    t: Literal["presence"]
    id: str
    node: str
    state: Literal["up", "left", "lost", "never"]
    since: float | None
    remote: str
    rtt_ms: float | None


class Synced(TypedDict):
    """The answer to ``sync``: what moved, and what the import did (thread ids per outcome)."""

    t: Literal["synced"]
    id: str
    node: str
    peer: str
    direction: Literal["push", "pull"]
    bytes: int
    seconds: float
    report: NotRequired[dict[str, Any] | None]


class InfoReply(TypedDict, total=False):
    """The answer to ``info``: cheap counts, and every held job with ``detail``."""

    t: Literal["info"]
    id: str
    node: str
    topology: str
    version: str
    pid: int
    gateway: Literal["active", "inactive"]
    plugins: list[str]
    capabilities: list[str]
    detected: list[str]
    peers: list[str]
    links: list[str]
    generation: int
    jobs: int
    clock: str
    job_states: dict[str, int]
    job_list: list[dict[str, Any]]


MESSAGE_TYPES: Final[dict[str, type[Any]]] = {
    "exec": Exec,
    "attach": Attach,
    "ack": Ack,
    "detach": Detach,
    "cancel": Cancel,
    "signal": Signal,
    "eof": Eof,
    "notify": Notify,
    "configure": Configure,
    "info": Info,
    "presence": Presence,
    "sync": Sync,
    "started": Started,
    "exit": ExitMessage,
    "error": ErrorMessage,
    "done": Done,
    "configured": Configured,
    "synced": Synced,
}
"""Message type (``t``) -> its TypedDict, for every type :func:`~codebolt_topo.wire.codec.decode`
checks (the ``info`` reply shares its request's name and is :class:`InfoReply`)."""
