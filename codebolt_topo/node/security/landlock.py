"""Landlock, the unprivileged Linux sandbox, through its three system calls (ctypes, no build).

A process that restricts itself enters a *domain* it and its descendants can never leave. Two
properties of any domain matter here, whatever it allows:

* a process in a domain cannot ptrace a process outside it, nor open its ``/proc/PID/mem`` or
  its descriptors under ``/proc/PID/fd`` (root included: Landlock is not a capability check), so
  a job cannot lift tokens out of the memory of the ``codebolt`` command that runs beside it.
  (``/proc/PID/environ`` stays readable on recent kernels: nothing secret travels in an
  environment here);
* a domain that handles any filesystem access forbids changing the mount table, so a root job
  cannot unmount what hides the topology's state from it (see :mod:`.isolation`).

:class:`Ruleset` is the general tool (allow-listed paths beneath which the handled accesses are
allowed); :func:`abi_version` says what the kernel offers (0: nothing).
"""

from __future__ import annotations

import ctypes
import os
from typing import Final

__all__ = [
    "ALL_FILE",
    "Ruleset",
    "abi_version",
    "fs_access",
    "no_new_privileges",
]

_CREATE_RULESET: Final = 444  # the same number on every architecture (a 5.13 addition)
_ADD_RULE: Final = 445
_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1
_RULE_PATH_BENEATH: Final = 1
_PR_SET_NO_NEW_PRIVS: Final = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15

_FS_BY_ABI: Final = {
    1: (1 << 13) - 1,
    2: (1 << 14) - 1,
    3: (1 << 15) - 1,
    4: (1 << 15) - 1,
    5: (1 << 16) - 1,
}
ALL_FILE: Final = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""The accesses that apply to a file (a rule on a file may name no other)."""

_libc = ctypes.CDLL(None, use_errno=True)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled)."""
    version = int(_libc.syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    return max(version, 0)


def fs_access(abi: int) -> int:
    """Every filesystem access right ABI ``abi`` knows."""
    return _FS_BY_ABI[min(abi, max(_FS_BY_ABI))] if abi > 0 else 0


def no_new_privileges() -> None:
    """Set ``no_new_privs`` (needed to restrict oneself without CAP_SYS_ADMIN): setuid bits are
    ignored from now on, in this process and everything it runs."""
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


class Ruleset:
    """A Landlock ruleset handling ``handled`` filesystem accesses: each is denied except beneath
    a path :meth:`allow`-ed for it. :meth:`restrict_self` makes it this process's domain."""

    def __init__(self, handled: int) -> None:
        self.handled = handled
        attr = _RulesetAttr(handled)
        fd = int(_libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
        self._fd = fd

    def allow(self, path: str, access: int) -> None:
        """Allow ``access`` (limited to what is handled) on ``path`` and beneath it. A symlink
        is not followed: the rule would land on its target."""
        target = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            rule = _PathBeneathAttr(access & self.handled, target)
            if _libc.syscall(_ADD_RULE, self._fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0):
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        finally:
            os.close(target)

    def restrict_self(self) -> None:
        """Enter the domain (for good); closes the ruleset."""
        try:
            if _libc.syscall(_RESTRICT_SELF, self._fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")
        finally:
            os.close(self._fd)
