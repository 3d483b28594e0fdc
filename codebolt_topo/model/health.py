"""Heartbeat and restart settings of a topology and its nodes.

Durations are written the way people say them (``30s``, ``500ms``, ``2m``) or as plain numbers of
seconds. The defaults follow the seed: a heartbeat every 30 s. A missed beat is not a failure: a
node becomes *suspect* only after several intervals plus the transport timeout, and *failed*
only after a separate, longer deadline, so a busy laptop or a GC pause does not trigger restarts.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

__all__ = ["DURATION_PATTERN", "Duration", "HeartbeatSpec", "RestartPolicy", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> Any:
    """``"30s"`` → 30.0, ``"500ms"`` → 0.5, ``2`` → 2.0; anything else is left for pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 30s, 500ms or 2m, got {value!r}")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


#: A positive duration as the loader accepts one (some digit other than 0 before the unit).
DURATION_PATTERN = r"^\s*(?=[0-9.]*[1-9])[0-9]+(\.[0-9]+)?\s*(ms|s|m|h)?\s*$"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0),
    # The validator takes strings: say so to editors (the JSON schema would type it a number).
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "Seconds, or a string such as 30s, 500ms, 2m.",
        }
    ),
]


class RestartPolicy(StrEnum):
    """What the reconciler does with a node that died or stopped answering."""

    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class HeartbeatSpec(BaseModel):
    """How often nodes are checked, and when silence means trouble."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration = Field(30.0, description="Time between heartbeats.")
    timeout: Duration = Field(10.0, description="How long one heartbeat may take.")
    suspect_after: Duration | None = Field(
        None, description="Silence after which a node is suspect (default 3 intervals + timeout)."
    )
    fail_after: Duration | None = Field(
        None,
        description="Silence after which a node is failed (default suspect_after + 2 intervals).",
    )

    @property
    def suspect_deadline(self) -> float:
        return self.suspect_after or 3 * self.interval + self.timeout

    @property
    def fail_deadline(self) -> float:
        return self.fail_after or self.suspect_deadline + 2 * self.interval

    @model_validator(mode="after")
    def _ordered(self) -> HeartbeatSpec:
        if self.suspect_deadline < self.interval + self.timeout:
            raise ValueError("suspect_after must be at least one interval plus the timeout")
        if self.fail_deadline <= self.suspect_deadline:
            raise ValueError("fail_after must be longer than suspect_after")
        return self
