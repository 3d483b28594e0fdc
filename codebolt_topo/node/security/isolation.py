"""Jobs on a local node cannot reach the topology's secrets.

A local node's jobs run as the user who ran ``codebolt apply``, beside the topology's state
directory (``.codebolt/``): the state file holds every node's admin and edge tokens, and each
node's launch config its own. Read as that user, one job on ``c`` could send work to any node.
So a local daemon, before it serves anything, walls the state directory off for itself and for
every process it will ever run:

1. **A mount namespace of its own** (as root directly; otherwise inside a user namespace that maps
   the user to itself). The state directory is covered by an empty tmpfs and only the node's own
   directory (workspace, narrative store, log, child topologies) is bound back; its launch config
   is covered by ``/dev/null``. Everything else on the machine looks and works as before, files
   created later included; the ``codebolt`` CLI, outside the namespace, sees the real directory.
2. **A Landlock domain** (:mod:`.landlock`): no process in it can ptrace or read the memory or
   environment of a process outside it (the CLI holding tokens), and none can change the mount
   table (a root job cannot unmount the tmpfs).

Where the kernel refuses the namespace (unprivileged user namespaces disabled, as Ubuntu 24.04
does), Landlock alone fences the state directory: every entry of each directory above it is
allowed as it was when the node started, the state directory is not, the node's own directory
is. That holds as firmly, at a cost: jobs cannot add or remove entries directly in those
directories above (``$HOME``, usually). Where neither is possible (not Linux, Landlock off) the
node says so in its log and jobs can read the state: the README says so beside the local provider.

Without user namespaces' help a non-root process must set ``no_new_privs`` to enter a Landlock
domain, and inside a user namespace setuid-root programs cannot gain root either: ``sudo`` does
not work in jobs on a local node started by a non-root user.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from codebolt_topo.node.security import landlock

__all__ = ["Fence", "isolate"]

log = logging.getLogger(__name__)

_CLONE_NEWNS: Final = 0x00020000
_CLONE_NEWUSER: Final = 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class Fence:
    """What a node walls off: ``hidden`` (a directory), except ``kept`` directories below it,
    and the ``blanked`` files (below ``kept``) that read as empty."""

    hidden: Path
    kept: tuple[Path, ...] = ()
    blanked: tuple[Path, ...] = ()


def isolate(fence: Fence) -> str:
    """Wall ``fence`` off for this process and everything it runs (call before any thread
    starts). Returns how, for the log: ``"mount namespace"``, ``"landlock"`` or ``"none"``."""
    if not fence.hidden.is_dir():
        return "none"
    abi = landlock.abi_version()
    try:
        _enter_mount_namespace()
    except OSError as exc:
        log.info("no private mount namespace (%s); fencing with Landlock", exc)
    else:
        _hide(fence)
        if abi:
            _ptrace_domain()
        return "mount namespace"
    if abi:
        _landlock_fence(fence, abi)
        return "landlock"
    log.warning(
        "neither a mount namespace nor Landlock is available: jobs on this node can "
        "read the topology's state directory %s and the tokens in it",
        fence.hidden,
    )
    return "none"


def _call(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), what)


def _enter_mount_namespace() -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        _call(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _call(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare(CLONE_NEWUSER)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    # Private first: a mount made here must never propagate back to the machine's namespace.
    _call(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")


def _hide(fence: Fence) -> None:
    """Cover ``fence.hidden`` with an empty tmpfs and bind the kept directories back."""
    kept = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        for path in fence.kept
        if path.is_dir()
    ]
    try:
        _call(
            _libc.mount(
                b"codebolt-hidden",
                bytes(fence.hidden),
                b"tmpfs",
                _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                b"mode=0700,size=64k",
            ),
            f"mount tmpfs on {fence.hidden}",
        )
        for path, fd in kept:
            path.mkdir(parents=True, exist_ok=True)  # inside the tmpfs
            _call(
                _libc.mount(
                    f"/proc/self/fd/{fd}".encode(), bytes(path), None, _MS_BIND | _MS_REC, None
                ),
                f"bind {path}",
            )
    finally:
        for _, fd in kept:
            os.close(fd)
    for path in fence.blanked:
        if path.exists():
            _call(_libc.mount(b"/dev/null", bytes(path), None, _MS_BIND, None), f"blank {path}")
    # The daemon's working directory may be under the hidden one: /proc/PID/cwd must not lead
    # a job back to it.
    os.chdir(fence.kept[0] if fence.kept else "/")


def _ptrace_domain() -> None:
    """A domain that only forbids making block devices (nobody here needs to): its point is the
    ptrace wall and the frozen mount table that come with any domain."""
    # Root, or the owner of the user namespace just made: CAP_SYS_ADMIN, so no no_new_privs.
    landlock.Ruleset(landlock.MAKE_BLOCK).restrict_self()


def _landlock_fence(fence: Fence, abi: int) -> None:
    """Allow every entry beside the path down to ``fence.hidden``, the kept directories, and
    listing the directories on the way; the hidden directory stays out of reach."""
    everything = landlock.fs_access(abi)
    ruleset = landlock.Ruleset(everything)
    hidden = fence.hidden.resolve()
    for parent in reversed(hidden.parents):
        ruleset.allow(str(parent), landlock.READ_DIR)
        on_path = hidden.parts[len(parent.parts)]
        for entry in os.scandir(parent):
            if entry.name == on_path or entry.is_symlink():
                continue  # a link is followed to its target, which has (or is) its own entry
            ruleset.allow(
                entry.path,
                everything
                if entry.is_dir(follow_symlinks=False)
                else everything & landlock.ALL_FILE,
            )
    for path in fence.kept:
        if path.is_dir():
            ruleset.allow(str(path), everything)
    if os.geteuid() != 0:
        landlock.no_new_privileges()
    ruleset.restrict_self()
