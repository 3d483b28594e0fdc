"""The children API of a node, sans I/O: what an agent on a parent node may ask, and the replies.

A node with the ``topology-manager`` plugin manages *child topologies*: an agent running on it
(any job, in any language) finds a Unix socket in ``$CODEBOLT_CHILDREN`` and writes one JSON
object per line; each gets one JSON line back. Requests:

* ``{"op": "apply", "topology": "<topology.yaml text>"}``: create or grow/shrink the child named
  by the text's ``name:``; reply ``name``, ``file``, ``changes``, ``nodes`` (name -> lifecycle);
* ``{"op": "exec", "name": C, "node": N, "argv": [...]}`` (or ``"shell": "..."``, optional
  ``timeout``): run a command on node N of child C, routed from the child's entry; reply
  ``code``, ``stdout``, ``stderr`` once it ended (not streamed: a child is the agent's own
  environment; use ``codebolt exec FILE`` with the reply's ``file`` to stream);
* ``{"op": "destroy", "name": C}``: stop every node of C and forget it; reply ``stopped``;
* ``{"op": "list"}``: reply ``children`` (name -> {file, nodes}).

Every reply has ``ok``; ``ok: false`` comes with ``error``. A child's file and state live under
the parent's state directory (``children/<name>/``), so they go when the parent goes: disabling
the plugin (the parent stopping) destroys every child first. This module only parses, checks
and lays out paths; :mod:`codebolt_topo.children.plugin` does the I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebolt_topo.errors import ConfigError
from codebolt_topo.providers.leftovers import CHILDREN_DIR

__all__ = [
    "CHILDREN_DIR",
    "ENV_VAR",
    "OPS",
    "ChildRequest",
    "child_dir",
    "child_file",
    "child_name",
    "encode_reply",
    "error_reply",
    "parse_request",
]


ENV_VAR = "CODEBOLT_CHILDREN"
"""Environment variable through which jobs on the parent find the socket."""
OPS = ("apply", "exec", "destroy", "list")
MAX_LINE = 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ChildRequest:
    """One checked request."""

    op: str
    name: str | None = None
    topology: str | None = None
    node: str | None = None
    argv: list[str] | None = None
    shell: str | None = None
    timeout: float | None = None


def _fail(message: str) -> ConfigError:
    return ConfigError(f"children API: {message}")


def parse_request(line: bytes | str) -> ChildRequest:
    """Check one request line; ConfigError says what is wrong with it."""
    try:
        raw: Any = json.loads(line)
    except ValueError as exc:
        raise _fail(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail("a request is a JSON object")
    op = raw.get("op")
    if op not in OPS:
        raise _fail(f"op must be one of {', '.join(OPS)}, not {op!r}")
    if op == "list":
        return ChildRequest(op)
    if op == "apply":
        text = raw.get("topology")
        if not isinstance(text, str) or not text.strip():
            raise _fail("apply needs 'topology': the text of a topology.yaml")
        return ChildRequest(op, topology=text)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(f"{op} needs 'name': a child topology's name, not {name!r}")
    if op == "destroy":
        return ChildRequest(op, name=name)
    node, argv, shell, timeout = (
        raw.get("node"),
        raw.get("argv"),
        raw.get("shell"),
        raw.get("timeout"),
    )
    if not isinstance(node, str):
        raise _fail("exec needs 'node': the node of the child to run on")
    if (argv is None) == (shell is None):
        raise _fail("exec needs exactly one of 'argv' (a list of strings) and 'shell'")
    if argv is not None and not (
        isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
    ):
        raise _fail("'argv' must be a non-empty list of strings")
    if shell is not None and not isinstance(shell, str):
        raise _fail("'shell' must be a string")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise _fail("'timeout' must be a positive number of seconds")
    return ChildRequest(
        op,
        name=name,
        node=node,
        argv=argv,
        shell=shell,
        timeout=None if timeout is None else float(timeout),
    )


def child_name(topology_text: str) -> str:
    """The ``name:`` of a topology text (checked again, fully, by the loader on apply)."""
    from ruamel.yaml import YAML

    try:
        document: Any = YAML(typ="safe").load(topology_text)
    except Exception as exc:
        raise _fail(f"the topology is not YAML: {exc}") from None
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(f"the topology needs a valid 'name:', not {name!r}")
    return name


def child_dir(state_dir: Path, name: str) -> Path:
    """Where child ``name`` of the node with ``state_dir`` lives (its file and its state)."""
    return state_dir / CHILDREN_DIR / name


def child_file(state_dir: Path, name: str) -> Path:
    return child_dir(state_dir, name) / "topology.yaml"


def encode_reply(**fields: Any) -> bytes:
    """A success reply line."""
    return json.dumps({"ok": True, **fields}).encode() + b"\n"


def error_reply(message: str) -> bytes:
    """A failure reply line."""
    return json.dumps({"ok": False, "error": message}).encode() + b"\n"
