"""Keys for the throwaway OpenSSH servers the cloud-vm tests start on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def make_ssh_keys(root: Path) -> None:
    """Write a client key pair ``id`` (authorized in ``authorized_keys``) and a host key pair
    ``host`` under ``root``; as root, also create sshd's privilege-separation directory."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for name in ("id", "host"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
        )
    shutil.copy(root / "id.pub", root / "authorized_keys")
