"""The key that encrypts the tokens in a state, wherever the state lives.

Why: a state holds every node's admin token, every edge token and the key of the topology's
certificate authority (sealed the same way). Shared through PostgreSQL, a
backup or ``state pull``, it must not hand them to whoever reads it. So every token is sealed
(Fernet: AES-128-CBC with HMAC-SHA256, from ``cryptography``) with a key the operator holds
outside the state, and the stored text of a token reads ``sealed:v1:<key id>:<ciphertext>``.
The key id (the first 16 hex digits of the key's SHA-256) says which key opens it, so an error
can name the key that is missing.

Where the key comes from, first found first:

1. ``CODEBOLT_STATE_KEY``: the key itself (what ``state rotate-key`` prints, urlsafe base64);
2. ``CODEBOLT_STATE_KEY_FILE``: a file holding it;
3. ``.codebolt/<topology>.key`` beside the topology file (mode 0600), which the first write of
   a state creates when no key is configured at all: a topology nobody set up for a team works
   as before, and its state file no longer holds a usable token.

A key read from the environment is removed from this process's environment at once
(:func:`take_environment_key`): providers spawn node daemons with the CLI's environment, and
jobs inherit the daemon's, so a key left there would reach every job on every local node.

Without the key, tokens stay sealed: validate, plan, status and drift work from the rest of the
state; acting as a node's admin (apply, exec, watch, credentials) fails with
:class:`MissingKeyError`, which says which key is missing and where it was looked for.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codebolt_topo.errors import StateError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "SEALED_PREFIX",
    "Keyring",
    "MissingKeyError",
    "StateKey",
    "forget_environment_key",
    "is_sealed",
    "require_open",
    "sealed_key_id",
    "take_environment_key",
]

KEY_ENV = "CODEBOLT_STATE_KEY"
KEY_FILE_ENV = "CODEBOLT_STATE_KEY_FILE"
SEALED_PREFIX = "sealed:v1:"

_taken: dict[str, str] = {}


class MissingKeyError(StateError):
    """The state's tokens are sealed with a key this process does not have."""


def take_environment_key() -> tuple[str | None, str | None]:
    """The key and key file named in the environment, removed from ``os.environ`` so that no
    process started from here (node daemons, their jobs) inherits them. Remembered for the
    rest of this process; a value set again later replaces the remembered one."""
    for name in (KEY_ENV, KEY_FILE_ENV):
        value = os.environ.pop(name, None)
        if value:
            _taken[name] = value
    return _taken.get(KEY_ENV), _taken.get(KEY_FILE_ENV)


def forget_environment_key() -> None:
    """Forget keys taken from the environment (tests running several users in one process)."""
    _taken.clear()


def environment_for_child() -> dict[str, str]:
    """The key variables this process took, for a child that must act as admin too (the
    detached ``watch``): given to it explicitly, never inherited by accident."""
    take_environment_key()
    return dict(_taken)


def is_sealed(token: str) -> bool:
    return token.startswith(SEALED_PREFIX)


def require_open(token: str, what: str) -> None:
    """Refuse to use a token still sealed (loaded without its key) as a credential."""
    if is_sealed(token):
        raise MissingKeyError(
            f"cannot {what}: its admin token is encrypted with state key "
            f"{sealed_key_id(token)}, which this machine does not have; set {KEY_ENV} or "
            f"{KEY_FILE_ENV}"
        )


def sealed_key_id(token: str) -> str:
    """The id of the key that sealed ``token``."""
    return token[len(SEALED_PREFIX) :].split(":", 1)[0]


@dataclass(frozen=True)
class StateKey:
    """One Fernet key and where it came from (for messages)."""

    secret: bytes
    source: str

    @classmethod
    def generate(cls, source: str) -> StateKey:
        from cryptography.fernet import Fernet

        return cls(Fernet.generate_key(), source)

    @classmethod
    def parse(cls, text: str, source: str) -> StateKey:
        raw = text.strip().encode()
        try:
            decoded = base64.urlsafe_b64decode(raw)
        except ValueError:
            decoded = b""
        if len(decoded) != 32:
            raise StateError(
                f"{source}: not a state key (expected 32 bytes in urlsafe base64, as "
                "codebolt state rotate-key writes)"
            )
        return cls(raw, source)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:16]

    def seal(self, token: str) -> str:
        from cryptography.fernet import Fernet

        sealed = Fernet(self.secret).encrypt(token.encode()).decode()
        return f"{SEALED_PREFIX}{self.key_id}:{sealed}"

    def open(self, token: str) -> str:
        from cryptography.fernet import Fernet, InvalidToken

        try:
            return Fernet(self.secret).decrypt(token.rsplit(":", 1)[1].encode()).decode()
        except (InvalidToken, IndexError, ValueError):
            raise StateError(
                f"a sealed token does not open with key {self.key_id} ({self.source}): the "
                "state is damaged"
            ) from None

    def write(self, path: Path) -> None:
        """Save the key to ``path`` (0600, created exclusively: a key is never overwritten)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.secret + b"\n")


def _read_key_file(path: Path) -> StateKey | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"{path}: cannot read the state key: {error.strerror}") from None
    return StateKey.parse(text, str(path))


@dataclass
class Keyring:
    """The keys this process has for one topology, and which one seals new tokens."""

    default_file: Path
    keys: list[StateKey] = field(default_factory=list)
    generated: Path | None = None
    #: When set, seals every new token whatever the state used before (key rotation).
    primary: StateKey | None = None

    @classmethod
    def discover(cls, default_file: Path) -> Keyring:
        """Keys from the environment, the key file it names and ``default_file``, in order."""
        ring = cls(default_file)
        value, _file = take_environment_key()
        if value:
            ring.keys.append(StateKey.parse(value, f"${KEY_ENV}"))
        ring._reread()
        return ring

    def where(self) -> str:
        """Where keys were looked for, for an error message."""
        return (
            f"set {KEY_ENV} (the key) or {KEY_FILE_ENV} (a file holding it), or put the key "
            f"file at {self.default_file}"
        )

    def find(self, key_id: str) -> StateKey | None:
        """The key ``key_id``; the key files are read again when it is not known yet (another
        process may have created or rotated the key since this keyring was made)."""
        found = next((k for k in self.keys if k.key_id == key_id), None)
        if found is None:
            self._reread()
            found = next((k for k in self.keys if k.key_id == key_id), None)
        return found

    def _reread(self) -> None:
        _value, file = take_environment_key()
        for path in ([Path(file)] if file else []) + [self.default_file]:
            found = _read_key_file(path)
            if found is not None and all(k.key_id != found.key_id for k in self.keys):
                self.keys.append(found)

    def missing(self, key_id: str, what: str = "act as a node's admin") -> MissingKeyError:
        held = ", ".join(f"{k.key_id} ({k.source})" for k in self.keys) or "none"
        return MissingKeyError(
            f"cannot {what}: the tokens in the state are encrypted with state key {key_id}, "
            f"and this machine does not have it (keys here: {held}); {self.where()}. Ask "
            "whoever holds the key; plan, status and validate work without it"
        )

    def sealing_key(self, sealed_ids: Iterable[str]) -> StateKey:
        """The key that seals new tokens: the one already used in the state, else the first
        key here, else a new key written to the default file (a state nobody keyed yet)."""
        if self.primary is not None:
            return self.primary
        ids = set(sealed_ids)
        for key_id in sorted(ids):
            found = self.find(key_id)
            if found is None:
                raise self.missing(key_id, "write new tokens")
            return found
        if self.keys:
            return self.keys[0]
        key = StateKey.generate(str(self.default_file))
        key.write(self.default_file)
        self.keys.append(key)
        self.generated = self.default_file
        return key

    def seal_document(self, document: dict[str, Any]) -> dict[str, Any]:
        """A state's JSON document with every plaintext token sealed (sealed ones kept)."""
        tokens = list(_tokens(document))
        sealed_ids = {sealed_key_id(t) for _, _, t in tokens if is_sealed(t)}
        plain = [(holder, k, t) for holder, k, t in tokens if not is_sealed(t)]
        if plain:
            key = self.sealing_key(sealed_ids)
            for holder, name, token in plain:
                holder[name] = key.seal(token)
        return document

    def open_document(self, document: dict[str, Any], *, sealed_ok: bool) -> dict[str, Any]:
        """A stored document with its tokens opened; those without a key here stay sealed when
        ``sealed_ok`` (plan, status), else :class:`MissingKeyError`."""
        for holder, name, token in list(_tokens(document)):
            if not is_sealed(token):
                continue  # written before tokens were sealed: sealed at the next write
            key = self.find(sealed_key_id(token))
            if key is None:
                if sealed_ok:
                    continue
                raise self.missing(sealed_key_id(token))
            holder[name] = key.open(token)
        return document


def _tokens(document: dict[str, Any]) -> Iterable[tuple[dict[str, Any], str, str]]:
    """Every token of a state document: (the dict holding it, its key, its value)."""
    for node in (document.get("nodes") or {}).values():
        if isinstance(node, dict) and isinstance(node.get("admin_token"), str):
            yield node, "admin_token", node["admin_token"]
        if isinstance(node, dict) and isinstance(node.get("join_credential"), str):
            yield node, "join_credential", node["join_credential"]
    edges = document.get("edge_tokens") or {}
    for name, token in edges.items():
        if isinstance(token, str):
            yield edges, name, token
    ca = document.get("ca")  # the topology CA's private key: as secret as any token
    if isinstance(ca, dict) and isinstance(ca.get("key"), str):
        yield ca, "key", ca["key"]
