"""The one exception tree of the project.

Every error a user can cause derives from :class:`TopoError`; the CLI maps each class to an exit
code and prints ``str(error)`` on one line (tracebacks only under ``--debug``). Errors raised by
third-party libraries are translated into these at the boundary where they occur, so callers of
the Python API never need to import websockets, pydantic or ruamel to handle failures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "ExecError",
    "Location",
    "LockError",
    "ProtocolError",
    "ProviderError",
    "StateError",
    "TopoError",
    "TopologyError",
    "ValidationIssue",
    "cannot_reach",
]


class TopoError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file, 1-based like editors show it."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem found in a topology file: where, which field, and what is wrong."""

    location: Location
    field: str
    message: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.location}:{field} {self.message}"


class TopologyError(TopoError):
    """A topology file is invalid. Carries every issue found, not only the first."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class ConfigError(TopoError):
    """A setting outside the topology file (CLI option, node config, environment) is wrong."""


class StateError(TopoError):
    """The state file cannot be read, written, or does not match the topology."""


class LockError(StateError):
    """The state lock is held by another run."""


class ProviderError(TopoError):
    """A provider failed to create, inspect or stop an environment."""


class ProtocolError(TopoError):
    """A peer sent something the node protocol does not allow."""


class ExecError(TopoError):
    """A routed execution request failed before or while running (names node and hop)."""

    def __init__(
        self, message: str, *, node: str | None = None, hop: str | None = None, code: str = "error"
    ) -> None:
        self.node = node
        self.hop = hop
        self.code = code
        super().__init__(message)


def cannot_reach(who: str, error: BaseException, node: str | None) -> ExecError:
    """A connection to a node that did not open, in the one wording every way of connecting
    uses (a WebSocket, a ``GET /info``): ``cannot reach WHO: REASON``, code ``unreachable``. A
    certificate the topology's CA did not issue for that node says so."""
    ssl = sys.modules.get("ssl")  # not imported here: validate and --help never load it
    if ssl is not None and isinstance(error, ssl.SSLCertVerificationError):
        reason = f"its certificate is not the topology's for this node ({error.verify_message})"
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        reason = str(error) or type(error).__name__
    return ExecError(f"cannot reach {who}: {reason}", node=node, code="unreachable")
