"""Entrypoint of a swarm node's task: the daemon, configured from the Docker secret.

The swarm provider hands the LaunchConfig to the task as a Docker secret mounted at
``/run/secrets/codebolt-launch`` (a tmpfs file, mode 0400, owned by the node's user), never in
the service's environment, arguments or labels, which ``docker service inspect`` shows to anyone
with access to the manager. The daemon is started as the docker image's entrypoint does it
(:mod:`codebolt_topo.providers.docker.container_main`): marked non-dumpable, with its detected
capabilities logged, reading the config from a pipe. The secret holds no token a job could use:
the admin token appears only as its digest, and edge tokens arrive later over ``configure``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from codebolt_topo.providers.docker.container_main import (
    CAPABILITIES_MARKER,
    _config_pipe,
    _make_undumpable,
    probe_capabilities,
)
from codebolt_topo.providers.swarm.service_spec import LAUNCH_FILE

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the node daemon with the secret's config; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        raw = Path(LAUNCH_FILE).read_bytes()
    except OSError as error:
        print(f"codebolt-task: cannot read the launch config: {error}", file=sys.stderr)
        return 2
    if not _make_undumpable():
        print("codebolt-task: could not mark the daemon non-dumpable", file=sys.stderr)
    print(CAPABILITIES_MARKER + json.dumps(probe_capabilities()), file=sys.stderr, flush=True)
    from codebolt_topo.node.__main__ import main as node_main

    return node_main(["--config", _config_pipe(raw), *args])


if __name__ == "__main__":
    sys.exit(main())
