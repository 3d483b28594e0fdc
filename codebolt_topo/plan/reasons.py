"""Why a plan acts on a node, as data: the field that changes, its value before and after, and
the sentence a person reads (pure).

The planner compares each setting itself, so it is where a reason is known whole; words built
from it can always be rebuilt from the data, never the other way round (the engine used to parse
the sentences back into fields). ``plan --json`` prints the data, the text plan the sentence.

Some values must not reach a screen or a CI log unless asked: a node's ``env`` is where API keys
end up. The planner marks those reasons ``sensitive``; :meth:`Reason.masked` replaces their
values by :data:`MASK` (what is set stays visible, as Terraform does), and every renderer masks
unless told to show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MASK",
    "SENSITIVE_KEYS",
    "Reason",
    "launch_reasons",
    "peer_endpoint_changes",
    "show_value",
]

MASK = "(sensitive)"
SENSITIVE_KEYS = frozenset({"env"})
"""Launch settings (of a node, in topology.yaml or its recorded launch) whose values are masked."""


def show_value(value: Any) -> str:
    """A value as a reason shows it: ``(none)``, a quoted string, the mask as it is."""
    if value is None:
        return "(none)"
    if value == MASK:
        return MASK
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an action happens: ``field`` (None for a reason about the whole node, such as drift),
    its value ``before`` and ``after`` (None where not applicable), the sentence shown, and
    whether the values are ``sensitive`` (masked unless asked)."""

    field: str | None
    before: Any
    after: Any
    message: str
    sensitive: bool = False

    @classmethod
    def note(cls, message: str) -> Reason:
        """A reason about the whole node, with no field (``drift: process 1234 is gone``)."""
        return cls(None, None, None, message)

    @classmethod
    def change(cls, field: str, before: Any, after: Any, *, sensitive: bool = False) -> Reason:
        """``field: before -> after``."""
        message = f"{field}: {show_value(before)} -> {show_value(after)}"
        return cls(field, before, after, message, sensitive)

    def masked(self) -> Reason:
        """This reason with its values replaced by :data:`MASK` when sensitive (an absent value
        stays absent: that a variable appears or goes is not a secret)."""
        if not self.sensitive or self.field is None:
            return self
        return Reason.change(
            self.field,
            None if self.before is None else MASK,
            None if self.after is None else MASK,
            sensitive=True,
        )

    def shown(self, *, show_sensitive: bool = False) -> Reason:
        """This reason as a screen may show it."""
        return self if show_sensitive else self.masked()

    def as_json(self, *, show_sensitive: bool = False) -> dict[str, Any]:
        shown = self.shown(show_sensitive=show_sensitive)
        return {
            "field": shown.field,
            "before": shown.before,
            "after": shown.after,
            "message": shown.message,
        }


def launch_reasons(want: Mapping[str, Any], have: Mapping[str, Any]) -> list[Reason]:
    """Each launch setting that differs between the recorded ``have`` and the desired ``want``;
    a sensitive mapping (``env``) gives one reason per variable, so each can be masked alone."""
    reasons: list[Reason] = []
    for key, after in want.items():
        before = have.get(key)
        if before == after:
            continue
        if key in SENSITIVE_KEYS and isinstance(after, dict) and isinstance(before, dict | None):
            reasons.extend(_variables(key, before or {}, after))
            continue
        reasons.append(Reason.change(key, before, after))
    return reasons or [Reason.note("launch settings changed")]


def _variables(key: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterable[Reason]:
    for name in sorted({*before, *after}):
        old, new = before.get(name), after.get(name)
        if old != new:
            yield Reason.change(f"{key}.{name}", old, new, sensitive=True)


def peer_endpoint_changes(moved: Sequence[str]) -> Reason:
    """A sender's reason to be rewired: the peers it sends work to get new endpoints."""
    return Reason("peers.endpoint", None, list(moved), f"peer endpoint changes: {', '.join(moved)}")
