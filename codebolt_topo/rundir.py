"""This user's private runtime directory, where local sockets (exec brokers, node zygotes) live,
and how their long-lived servers are started.

``$XDG_RUNTIME_DIR/codebolt`` when the session has one, else ``/tmp/codebolt-<uid>``; made 0700 and
refused when it is not a directory owned by this user and closed to others (someone else could
otherwise create it first and listen in). Paths under it stay short: a Unix socket's path holds
at most 107 bytes, and a topology's own directory may be deep.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # the exec fast path imports this module: no typing, no pathlib
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["detach", "private_dir", "private_path"]


def private_path() -> str:
    """The directory as a string, created if needed; PermissionError when it is not this
    user's alone. (What ``codebolt exec`` through a broker uses: pathlib costs it 6 ms.)"""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "codebolt") if runtime else f"/tmp/codebolt-{os.getuid()}"
    try:  # noqa: SIM105 - contextlib.suppress would cost the exec fast path 2 ms
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{base} is not a private directory of this user")
    return base


def private_dir() -> Path:
    """:func:`private_path` as a Path."""
    from pathlib import Path

    return Path(private_path())


def detach(argv: list[str], env: dict[str, str], log: str | Path) -> int:
    """Start ``argv`` in a session of its own that outlives us (a broker, a zygote): stdin from
    ``/dev/null``, output appended to ``log`` (0600); nobody waits for it. Its pid."""
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)
