"""The ``backend:`` block of topology.yaml: where the topology's state lives.

A team shares one topology by sharing its state, so the choice belongs in the committed file;
the connection string does not (it carries a password), so the file only names the environment
variable that holds it. ``file`` (the default, also when the block is absent) keeps the state in
``.codebolt/`` beside the file; ``postgres`` keeps it in a PostgreSQL database, with the
semantics of Terraform's ``pg`` backend (see :mod:`codebolt_topo.engine.backends.postgres`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_DSN_ENV", "BackendSpec"]

DEFAULT_DSN_ENV = "CODEBOLT_PG_DSN"


class BackendSpec(BaseModel):
    """Where the state lives; the secrets to reach it come from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["file", "postgres"] = Field(
        "file", description="file (.codebolt/ beside this file) or postgres (shared by a team)."
    )
    dsn_env: str = Field(
        DEFAULT_DSN_ENV,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the PostgreSQL connection string (never "
        "written in this file: it carries a password).",
    )
    schema_name: str = Field(
        "codebolt",
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the state tables (created when missing).",
    )
