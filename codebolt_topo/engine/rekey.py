"""``codebolt state rotate-key``: seal every stored token with a new key, under the lock.

Why under the lock: a run writing the state while the key changes would seal its new tokens
with the old key after the rewrite, leaving a state half in each key. Why every kept version
(PostgreSQL): rotation answers "the old key may have leaked"; versions still sealed with it
would keep the very same tokens readable with it. The old key file is kept (``.old``) for
copies made before (a ``state pull`` output kept somewhere opens with it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.engine.statefile import StateBackend
from codebolt_topo.engine.statekey import Keyring, StateKey

__all__ = ["RotationReport", "rotate_key"]


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a rotation did: the key ids held before and the new one, where the keys are."""

    old: list[str]
    new: str
    key_file: Path
    kept_old: Path | None
    rewritten: int


def rotate_key(
    backend: StateBackend, new_key_file: Path | None = None, *, lock_timeout: float = 0.0
) -> RotationReport:
    """Generate a key, write it to ``new_key_file`` (default: the key file beside the state),
    and reseal the state's tokens with it. Needs the current key (the tokens are opened)."""
    target = (new_key_file or backend.keyring.default_file).resolve()
    with backend.locked("state rotate-key", timeout=lock_timeout):
        state = backend.load()  # MissingKeyError without the current key: nothing changes
        old = [k.key_id for k in backend.keyring.keys]
        key = StateKey.generate(str(target))
        kept_old = None
        if target.exists():
            kept_old = target.with_name(f"{target.name}.{time.strftime('%Y%m%dT%H%M%S')}.old")
            os.replace(target, kept_old)
        key.write(target)
        ring = Keyring(
            backend.keyring.default_file,
            keys=[key, *backend.keyring.keys],
            primary=key,
        )
        del state
        rewritten = backend.reseal(ring)
    return RotationReport(old, key.key_id, target, kept_old, rewritten)
