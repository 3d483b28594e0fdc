"""``codebolt jobs``: the jobs running on a topology's nodes, and attaching to or cancelling one.

Every node holds its jobs by the id of the request that started them (the executing node's key,
the same on every node a request reached); ``info`` with ``detail`` lists them. This module asks
every running node at once, with the admin token the state file holds for it, so a job is found
wherever it runs without routing. Attaching and cancelling connect straight to the node holding
the job: :meth:`NodeClient.attach` follows it from any offsets (0 replays what the node still
holds), and a cancel on that attachment kills the job and its process tree like a Ctrl-C of the
``exec`` that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebolt_topo.engine.backends import backend_for
from codebolt_topo.engine.joined_nodes import dials_out_only
from codebolt_topo.engine.statekey import require_open
from codebolt_topo.errors import ConfigError, StateError, TopoError
from codebolt_topo.model.state import Lifecycle, NodeState, State

if TYPE_CHECKING:
    from codebolt_topo.client import Exit, Failed
    from codebolt_topo.client.handle import ExecHandle

__all__ = [
    "JobInfo",
    "JobListing",
    "attach_job",
    "cancel_job",
    "find_job",
    "list_jobs",
    "node_info",
]

ACTIVE = frozenset({"running", "detached"})
"""Job states that still have a process (``finished`` jobs are held only for their output)."""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as its node describes it."""

    node: str
    id: str
    state: str
    pid: int | None
    age: float
    stdout: int
    stderr: int
    attached: int
    paused: bool
    command: str = ""
    owner: str | None = None

    @classmethod
    def from_info(cls, node: str, item: dict[str, Any]) -> JobInfo:
        return cls(
            node=node,
            id=str(item.get("id")),
            state=str(item.get("state")),
            pid=item.get("pid"),
            age=float(item.get("age") or 0.0),
            stdout=int(item.get("stdout") or 0),
            stderr=int(item.get("stderr") or 0),
            attached=int(item.get("attached") or 0),
            paused=bool(item.get("paused")),
            command=str(item.get("command") or ""),
            owner=item.get("owner"),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "id": self.id,
            "state": self.state,
            "pid": self.pid,
            "age": self.age,
            "stdout_bytes": self.stdout,
            "stderr_bytes": self.stderr,
            "attached": self.attached,
            "paused": self.paused,
            "command": self.command,
            "owner": self.owner,
        }


@dataclass(frozen=True, slots=True)
class JobListing:
    """Jobs found, and the nodes that could not be asked (with why)."""

    topology: str
    jobs: list[JobInfo]
    unreachable: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "topology": self.topology,
            "jobs": [job.as_json() for job in self.jobs],
            "unreachable": self.unreachable,
        }


def _state(path: Path) -> State:
    from codebolt_topo.plan.validate import validate_file

    return backend_for(path, validate_file(path).topology).load()


async def node_info(
    node: NodeState, *, detail: bool = False, timeout: float = 2.0
) -> dict[str, Any]:
    """The node's ``info`` reply, asked with its admin token (raises TopoError or OSError)."""
    from codebolt_topo.client import NodeClient

    if node.url is None:
        raise StateError(f"node {node.name!r} has no endpoint recorded")
    require_open(node.admin_token, f"ask node {node.name!r}")

    async def ask() -> dict[str, Any]:
        async with NodeClient.admin(node, resume=False, keepalive=(None, timeout)) as client:
            return await client.info(detail=detail)

    try:
        return await asyncio.wait_for(ask(), timeout)
    except TimeoutError:
        raise StateError(f"node {node.name!r} did not answer within {timeout:g} s") from None


async def list_jobs(
    path: Path, *, nodes: list[str] | None = None, finished: bool = False, timeout: float = 2.0
) -> JobListing:
    """Jobs on every running node (or ``nodes``): running and detached ones, and with
    ``finished`` also those held only for their output."""
    state = _state(path)
    for name in nodes or []:
        if name not in state.nodes:
            raise ConfigError(f"no node {name!r} in the state of {state.topology!r}")
    asked = [
        state.nodes[n]
        for n in (nodes or list(state.nodes))
        if state.nodes[n].lifecycle is Lifecycle.RUNNING
        and (nodes or not dials_out_only(state.nodes[n]))  # joined: listed only when named
    ]

    async def one(node: NodeState) -> tuple[str, list[JobInfo] | str]:
        if dials_out_only(node):
            return node.name, "joined from its own machine: nothing here reaches it"
        try:
            info = await node_info(node, detail=True, timeout=timeout)
        except (TopoError, OSError) as error:
            return node.name, str(error) or type(error).__name__
        return node.name, [JobInfo.from_info(node.name, item) for item in info.get("job_list", [])]

    jobs: list[JobInfo] = []
    unreachable: dict[str, str] = {}
    for name, found in await asyncio.gather(*(one(node) for node in asked)):
        if isinstance(found, str):
            unreachable[name] = found
        else:
            jobs.extend(job for job in found if finished or job.state in ACTIVE)
    jobs.sort(key=lambda job: (-job.age, job.node, job.id))
    return JobListing(state.topology, jobs, unreachable)


async def find_job(
    path: Path, job_id: str, *, node: str | None = None, timeout: float = 2.0
) -> tuple[NodeState, JobInfo]:
    """The one job whose id is ``job_id`` or starts with it (on ``node`` when given)."""
    state = _state(path)
    listing = await list_jobs(path, nodes=[node] if node else None, finished=True, timeout=timeout)
    exact = [job for job in listing.jobs if job.id == job_id]
    found = exact or [job for job in listing.jobs if job.id.startswith(job_id)]
    if not found:
        where = f"on node {node!r}" if node else "on any running node"
        missing = (
            f" ({', '.join(sorted(listing.unreachable))} did not answer)"
            if listing.unreachable
            else ""
        )
        raise ConfigError(f"no job {job_id!r} {where}{missing} (codebolt jobs lists them)")
    if len(found) > 1:
        places = ", ".join(sorted(f"{job.id} on {job.node}" for job in found))
        hint = "" if node else "; name the node with --node"
        raise ConfigError(f"job {job_id!r} is ambiguous: {places}{hint}")
    return state.nodes[found[0].node], found[0]


@contextlib.asynccontextmanager
async def attach_job(
    path: Path, job_id: str, *, node: str | None = None, from_start: bool = True
) -> AsyncIterator[tuple[JobInfo, ExecHandle]]:
    """Follow a job: its output from the start (as far as its node still holds it), or only what
    comes next, then its exit. Leaving the context detaches; the job keeps running."""
    from codebolt_topo.client import NodeClient

    holder, job = await find_job(path, job_id, node=node)
    offsets = None if from_start else {"stdout": job.stdout, "stderr": job.stderr}
    async with NodeClient.admin(holder) as client:
        yield job, await client.attach(job.id, holder.name, offsets)


async def cancel_job(
    path: Path, job_id: str, *, node: str | None = None, timeout: float = 10.0
) -> tuple[JobInfo, Exit | Failed]:
    """Kill a job (its whole process tree) and return how it ended."""
    from codebolt_topo.client import Exit, Failed, Started

    async with attach_job(path, job_id, node=node, from_start=False) as (job, handle):
        if job.state not in ACTIVE:
            raise ConfigError(f"job {job.id} on {job.node} already finished")

        async def until_end() -> Exit | Failed:
            async for event in handle:
                if isinstance(event, Started):
                    await handle.cancel()
                elif isinstance(event, Exit | Failed):
                    return event
            raise StateError(
                f"job {job.id} on {job.node}: the node ended the attachment without an exit"
            )

        try:
            return job, await asyncio.wait_for(until_end(), timeout)
        except TimeoutError:
            raise StateError(
                f"job {job.id} on {job.node} did not end within {timeout:g} s of its cancel"
            ) from None
