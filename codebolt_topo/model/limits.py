"""Bounds on what one request, one inbound connection and a whole node may take.

Pushed to every node in its runtime config (``limits:`` of the topology, or of one node), read
by the daemon before it takes anything: a request past one of them is refused with one error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Limits"]


class Limits(BaseModel):
    """What one request, one inbound connection and the whole node may take (issue 12).

    A request past one of them is refused with ``error`` code ``over-limit`` naming the node,
    the limit and its value; nothing is taken. Jobs and pipes count while a job's process
    runs; a job's pipes are its stdout, stderr and notification pipes, and stdin's when asked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: int = Field(
        1024, ge=1, description="Distinct targets one request may name (per request)."
    )
    connection_targets: int = Field(
        4096,
        ge=1,
        description="Targets still open across the requests of one inbound connection, run "
        "here or forwarded (per connection).",
    )
    jobs: int = Field(1024, ge=1, description="Jobs running on this node at once (per node).")
    connection_jobs: int = Field(
        512,
        ge=1,
        description="Running jobs started by the requests of one inbound connection.",
    )
    pipes: int = Field(3072, ge=3, description="Pipes held by running jobs (per node).")
    connection_pipes: int = Field(
        1536,
        ge=3,
        description="Pipes held by running jobs started from one inbound connection.",
    )
    descriptor_reserve: int = Field(
        128,
        ge=0,
        description="Descriptors kept free below RLIMIT_NOFILE for connections, links and "
        "logs: a job starts only when its descriptors fit below that line (per node).",
    )
