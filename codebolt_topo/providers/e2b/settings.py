"""E2b's node settings: the ``e2b:`` block (template, timeout, install mode); defaults apply
when a node leaves it out."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from codebolt_topo.model.settings import NodeSettings, SettingsBlock

__all__ = ["E2bNodeSettings", "E2bSettings"]


class E2bSettings(SettingsBlock):
    """How an e2b node's sandbox is made and kept (provider: e2b)."""

    template: str = Field(
        "base",
        min_length=1,
        description="Sandbox template name or ID. Its Python must be 3.11 or newer.",
    )
    timeout: int = Field(
        300,
        ge=30,
        le=86400,
        description="Seconds the sandbox lives without a keep-alive. While the node runs, its "
        "relay process on this machine renews it every third of this; if this machine goes "
        "away, the sandbox ends at most this long after.",
    )
    install: Literal["wheel", "template"] = Field(
        "wheel",
        description="wheel: upload this project's wheel through the files API and pip-install "
        "it into a venv in the sandbox (dependencies from the template's site-packages or "
        "the sandbox's package index); template: the template already has codebolt-topo.",
    )
    python: str = Field(
        "python3",
        min_length=1,
        description="Interpreter in the sandbox that makes the venv (wheel) or runs the node "
        "(template).",
    )


class E2bNodeSettings(NodeSettings):
    """The node field e2b adds: ``e2b:``, refused on any other provider's node."""

    refusal: ClassVar[str] = "{fields}: only provider: e2b uses e2b settings"

    e2b: E2bSettings | None = Field(
        None,
        description="Template, timeout and install mode of an e2b node's sandbox "
        "(e2b only; defaults apply when omitted).",
    )
