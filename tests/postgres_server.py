"""A real PostgreSQL for the tests: Debian's server, a cluster made by ``initdb`` in a temporary
directory, listening on a Unix socket only (no TCP port to clash with anything).

``.ci/run`` installs the ``postgresql`` package where it is missing. Without it the tests that
need a database skip, unless ``CODEBOLT_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns the skip
into a failure. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_bin_dir", "running_postgres"]


def find_bin_dir() -> Path | None:
    """The newest installed server's bin directory (``/usr/lib/postgresql/N/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One cluster: :meth:`start`, :meth:`stop` (``immediate``: like a crash) and its DSN."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "run"
        self._user: str | None = "postgres" if os.getuid() == 0 else None

    @property
    def dsn(self) -> str:
        user = self._user or pwd.getpwuid(os.getuid()).pw_name
        return f"host={self.socket_dir} port=5432 dbname=postgres user={user}"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        # Never a pipe: the server would inherit it and hold it open after pg_ctl returns.
        with open(self.root / "commands.log", "ab") as log:
            subprocess.run(command, check=True, stdout=log, stderr=log, timeout=120)

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        (self.root / "server.log").touch()
        if self._user:
            entry = pwd.getpwnam(self._user)
            for path in (self.root, self.socket_dir, self.root / "server.log"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", self.dsn.split("user=")[1])

    def start(self) -> None:
        options = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -p 5432"
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started cluster, stopped and removed afterwards; skips when no server is installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CODEBOLT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    root = Path(tempfile.mkdtemp(prefix="codebolt-pg-"))
    os.chmod(root, 0o755)
    server = PostgresServer(bin_dir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("fast")
        shutil.rmtree(root, ignore_errors=True)
