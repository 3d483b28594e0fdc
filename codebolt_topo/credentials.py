"""One node's credentials in a file of their own: what a developer needs to act as that node.

``codebolt state pull`` prints the whole state, every node's admin token included; in a team each
developer must hold only their own node's. :func:`write_credentials` writes one node's URL and
admin token to a new file readable by its owner only (like an SSH key), and
:func:`read_credentials` refuses a file that others can read, so a token copied carelessly is
caught before it is used.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from codebolt_topo.errors import ConfigError

__all__ = ["Credentials", "read_credentials", "write_credentials", "write_secret"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where a node listens and the token that lets its holder act as that node's admin."""

    topology: str
    node: str
    url: str
    token: str
    ca: str | None = None
    """The topology's CA certificate (PEM) to pin when the node serves TLS (``wss://``):
    pass it as ``NodeClient.connect(url, token, name=node, ca=ca)``."""

    def __repr__(self) -> str:  # never the token, whatever prints this
        return f"Credentials({self.topology!r}, {self.node!r}, {self.url!r})"


def write_secret(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only from its first byte, and
    whole or not at all (a temporary file beside it, synced, then renamed): a join
    credential, a launch config, the record of used join offers."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_credentials(path: Path | str, credentials: Credentials, *, force: bool = False) -> None:
    """Write ``credentials`` to ``path`` with mode 0600; an existing file only with ``force``."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists: pass --force to replace it") from None
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        json.dump(
            {
                "topology": credentials.topology,
                "node": credentials.node,
                "url": credentials.url,
                "token": credentials.token,
                **({"ca": credentials.ca} if credentials.ca else {}),
            },
            file,
            indent=2,
        )
        file.write("\n")


def read_credentials(path: Path | str) -> Credentials:
    """The credentials in ``path`` (a Path or a str); refused when group or others may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable credentials file: {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: readable by others (mode {stat.S_IMODE(mode):o}); run chmod 600 {path}"
        )
    try:
        ca = raw.get("ca")
        return Credentials(
            str(raw["topology"]),
            str(raw["node"]),
            str(raw["url"]),
            str(raw["token"]),
            str(ca) if ca is not None else None,
        )
    except (KeyError, TypeError):
        raise ConfigError(f"{path}: not a credentials file (topology, node, url, token)") from None
