"""An agent on the parent node: spawn a child environment, use it, close it.

It speaks the parent's children API (JSON lines on the Unix socket in $CODEBOLT_CHILDREN, see
codebolt_topo/children/api.py) with the standard library only, so it needs no token, no state
file and no codebolt install of its own. ``--keep`` leaves the child running (the parent closes
it when the parent is destroyed).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path


class Children:
    """A connection to the parent's children API."""

    def __init__(self) -> None:
        path = os.environ.get("CODEBOLT_CHILDREN")
        if not path:
            sys.exit("no $CODEBOLT_CHILDREN: run me on a node with the topology-manager plugin")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lines = self.sock.makefile("rb")

    def call(self, **request: object) -> dict[str, object]:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, object] = json.loads(self.lines.readline())
        if not reply["ok"]:
            sys.exit(f"children API: {reply['error']}")
        return reply


def main() -> None:
    api = Children()
    here = os.environ.get("CODEBOLT_NODE", "?")
    spawned = api.call(op="apply", topology=Path("child.yaml").read_text())
    name = spawned["name"]
    print(f"{here}: spawned child {name!r}: {spawned['nodes']}", flush=True)
    ran = api.call(
        op="exec",
        name=name,
        node="tester",
        shell='echo "tests pass on $CODEBOLT_NODE of $CODEBOLT_TOPOLOGY"',
    )
    print(
        f"{here}: {name}/tester said: {str(ran['stdout']).strip()} (exit {ran['code']})", flush=True
    )
    if "--keep" in sys.argv:
        print(f"{here}: keeping {name!r}: {api.call(op='list')['children']}", flush=True)
        return
    closed = api.call(op="destroy", name=name)
    print(
        f"{here}: closed child {name!r} ({closed['stopped']} nodes stopped); children now: "
        f"{api.call(op='list')['children']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
