"""Throwaway OpenSSH servers on loopback, the peer our exec latency is compared against.

Each server runs as the current user with its own host key, an authorized key made for the run,
and a config that allows nothing else.

``SetEnv SHLVL=1``: sshd runs every command through the user's login shell, and bash sources
``~/.bashrc`` for a command that arrives over ssh when it is the first shell level. On a
developer box that file does real work (``pyenv init`` here: 120 ms idle, ~1 s under load), which
made every "persistent" ssh command look like a second. It is the shell's cost, not ssh's, so the
peer skips it (bash does not source it at level 2).

Everything lives in one temporary directory and every server is stopped when the context exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SshPeers", "ssh_available", "ssh_peers"]

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def ssh_available() -> bool:
    return (
        Path(SSHD).exists()
        and shutil.which("ssh") is not None
        and shutil.which("ssh-keygen") is not None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SshPeers:
    """``count`` sshd servers; ``ssh(...)`` builds commands that hop through them."""

    root: Path
    ports: list[int]
    user: str

    def base(self) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.root / "id"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={self.root / 'known'}",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
        ]

    def proxyjump(self, hops: int, command: list[str]) -> list[str]:
        """``ssh -J`` through ``hops`` jump hosts to the last server: one fresh connection each."""
        return self._ssh(hops, [], command)

    def persistent(self, hops: int, command: list[str]) -> list[str]:
        """The same route over a ControlMaster connection kept open between commands."""
        options = [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.root}/cm-{hops}",
            "-o",
            "ControlPersist=60",
        ]
        return self._ssh(hops, options, command)

    def _ssh(self, hops: int, options: list[str], command: list[str]) -> list[str]:
        # Options must precede the destination: everything after it is the remote command.
        # -J runs ssh for each jump without our -i/-o flags, so they also live in the config.
        jumps = [f"{self.user}@127.0.0.1:{port}" for port in self.ports[:hops]]
        jump_args = ["-J", ",".join(jumps)] if jumps else []
        return [
            *self.base(),
            "-F",
            str(self.root / "config"),
            *options,
            *jump_args,
            "-p",
            str(self.ports[hops]),
            f"{self.user}@127.0.0.1",
            *command,
        ]


@contextlib.contextmanager
def ssh_peers(count: int) -> Iterator[SshPeers]:
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    root = Path(tempfile.mkdtemp(prefix="codebolt-bench-ssh-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "id")], check=True
        )
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host")], check=True
        )
        shutil.copy(root / "id.pub", root / "authorized_keys")
        os.chmod(root, 0o700)
        user = (
            os.environ.get("USER")
            or subprocess.run(
                ["id", "-un"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        (root / "config").write_text(
            f"Host *\n  IdentityFile {root / 'id'}\n  StrictHostKeyChecking no\n"
            f"  UserKnownHostsFile {root / 'known'}\n  LogLevel ERROR\n  BatchMode yes\n"
        )
        ports = [_free_port() for _ in range(count)]
        for port in ports:
            config = root / f"sshd-{port}.conf"
            config.write_text(
                f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
                f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
                f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                f"PidFile {root / f'sshd-{port}.pid'}\nPermitRootLogin prohibit-password\n"
                f"AllowTcpForwarding yes\nLogLevel ERROR\nSetEnv SHLVL=1\n"
            )
            servers.append(
                subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
            )
        for port in ports:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                time.sleep(0.05)
        yield SshPeers(root=root, ports=ports, user=user)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(5)
        shutil.rmtree(root, ignore_errors=True)
