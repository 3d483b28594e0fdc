"""Cloud-vm's node settings: the ``ssh:`` block naming the host a node runs on (and the jump
hosts before it), and how to trust and log into each."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from codebolt_topo.model.settings import NodeSettings, SettingsBlock

__all__ = ["CloudVmSettings", "SshHost", "SshSettings"]


class SshHost(SettingsBlock):
    """One SSH server and how to trust and log into it (a cloud-vm target or a jump host)."""

    host: str = Field(min_length=1, description="Host name or address of the SSH server.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(None, min_length=1, description="Login; defaults to the local user.")
    identity_file: str | None = Field(
        None,
        min_length=1,
        description="Private key file (~ expanded; relative to the topology file); defaults to "
        "the SSH agent and ~/.ssh keys.",
    )
    known_hosts: str | None = Field(
        None,
        min_length=1,
        description="known_hosts file that must list the server's key; defaults to "
        "~/.ssh/known_hosts.",
    )
    host_key: str | None = Field(
        None,
        min_length=1,
        description="The server's public key pinned in OpenSSH form ('ssh-ed25519 AAAA...'), "
        "instead of a known_hosts file.",
    )
    insecure_host_key: bool = Field(
        False,
        description="Accept any host key (labs and tests only): anyone on the path can "
        "impersonate the server.",
    )

    @model_validator(mode="after")
    def _one_way_to_trust(self) -> SshHost:
        if self.insecure_host_key and (self.known_hosts or self.host_key):
            raise ValueError("insecure_host_key: cannot be combined with known_hosts or host_key")
        if self.known_hosts and self.host_key:
            raise ValueError("known_hosts, host_key: give one way to check the host key, not both")
        return self


class SshSettings(SshHost):
    """Where a cloud-vm node runs: an SSH server (possibly behind jump hosts) with Python 3."""

    jump: list[SshHost] = Field(
        default_factory=list,
        description="Jump hosts crossed in order before the target (like ssh -J a,b).",
    )
    remote_dir: str = Field(
        ".codebolt-topo",
        min_length=1,
        description="Directory on the target (relative to the login's home) holding the "
        "wheelhouse, the venv and one directory per node.",
    )
    python: str = Field(
        "python3",
        min_length=1,
        description="Interpreter on the target that creates the venv; it must match this "
        "machine's Python minor version and platform (the wheels are built here).",
    )


class CloudVmSettings(NodeSettings):
    """The node field cloud-vm adds: ``ssh:``, required on its nodes, refused on any other."""

    refusal: ClassVar[str] = "{fields}: only provider: cloud-vm uses ssh settings"

    ssh: SshSettings | None = Field(
        None, description="The SSH server a cloud-vm node runs on (cloud-vm only)."
    )
