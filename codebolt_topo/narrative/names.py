"""Ids of objectives, threads, runs, snapshots and environments, and the refs built from them.

An id ends up inside a ref name, a commit trailer and a file name, so it is restricted to a small,
portable alphabet (:data:`ID_PATTERN`); every ref we write or accept additionally passes git's own
``check-ref-format`` rules (:func:`check_ref_format`), so a bundle we write is one git accepts and a
bundle we read cannot smuggle in a ref git would reject.
"""

from __future__ import annotations

import re

from codebolt_topo.narrative.errors import InvalidNameError

__all__ = [
    "ID_PATTERN",
    "REMOTES_PREFIX",
    "THREADS_PREFIX",
    "check_ref_format",
    "parse_remote_thread_ref",
    "parse_thread_ref",
    "remote_thread_ref",
    "thread_ref",
    "validate_id",
]

ID_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,126}")
"""One to 127 characters: letters, digits, ``_``, ``-`` and single dots, starting alphanumeric."""

THREADS_PREFIX = b"refs/narrative/threads/"
REMOTES_PREFIX = b"refs/narrative/remotes/"

_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f~^:?*\[\\]")


def validate_id(value: str, what: str = "id") -> str:
    """Return *value* when it is a valid id, else raise :class:`InvalidNameError`."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise InvalidNameError(
            f"invalid {what} {value!r}: use 1-127 letters, digits, '_', '-' or single '.', "
            "starting with a letter or digit"
        )
    if value.endswith((".", ".lock")):
        raise InvalidNameError(f"invalid {what} {value!r}: must not end with '.' or '.lock'")
    return value


def check_ref_format(ref: bytes) -> bytes:
    """Apply git's ``check-ref-format`` rules (full ref names, no ``--allow-onelevel``)."""
    if not ref or len(ref) > 1024:
        raise InvalidNameError(f"malformed ref name {ref!r}: empty or too long")
    bad = (
        _FORBIDDEN.search(ref) is not None
        or b".." in ref
        or b"@{" in ref
        or b"//" in ref
        or ref == b"@"
        or ref.startswith(b"/")
        or ref.endswith((b"/", b"."))
        or b"/" not in ref
        or any(part.startswith(b".") or part.endswith(b".lock") for part in ref.split(b"/"))
    )
    if bad:
        raise InvalidNameError(f"malformed ref name {ref!r}")
    return ref


def thread_ref(thread_id: str) -> bytes:
    """The ref holding the tip of a local thread."""
    return check_ref_format(THREADS_PREFIX + validate_id(thread_id, "thread id").encode())


def remote_thread_ref(source_env: str, thread_id: str) -> bytes:
    """Where a diverged thread received from *source_env* is kept beside the local one."""
    env = validate_id(source_env, "environment").encode()
    tid = validate_id(thread_id, "thread id").encode()
    return check_ref_format(REMOTES_PREFIX + env + b"/threads/" + tid)


def parse_thread_ref(ref: bytes) -> str:
    """Return the thread id of a local thread ref; raise when *ref* is anything else."""
    check_ref_format(ref)
    if not ref.startswith(THREADS_PREFIX):
        raise InvalidNameError(f"not a narrative thread ref: {ref!r}")
    try:
        return validate_id(ref[len(THREADS_PREFIX) :].decode("ascii"), "thread id")
    except UnicodeDecodeError as exc:
        raise InvalidNameError(f"malformed ref name {ref!r}") from exc


def parse_remote_thread_ref(ref: bytes) -> tuple[str, str]:
    """Return ``(source_env, thread_id)`` of a side-by-side diverged thread ref."""
    check_ref_format(ref)
    parts = ref[len(REMOTES_PREFIX) :].split(b"/")
    if not ref.startswith(REMOTES_PREFIX) or len(parts) != 3 or parts[1] != b"threads":
        raise InvalidNameError(f"not a narrative remote thread ref: {ref!r}")
    env, tid = parts[0].decode("ascii", "replace"), parts[2].decode("ascii", "replace")
    return validate_id(env, "environment"), validate_id(tid, "thread id")
