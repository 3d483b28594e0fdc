"""What a dead node started from its directory: close the child topologies it left behind.

A parent node (the topology-manager plugin, :mod:`codebolt_topo.children`) closes its children
itself when it stops. A parent killed with SIGKILL cannot, so what it started is marked: every
process it spawns carries ``CODEBOLT_CHILD_OF=<its state directory>`` in its environment, and
the docker provider labels every container, network and volume of a child topology with that
child's state directory, which lies under the parent's (in :data:`CHILDREN_DIR`).
:func:`reap_children` stops and removes both kinds, with the providers' own tools.

Two callers, one for each way a dead parent is noticed: the parent's replacement (the plugin,
when it is enabled) and the local provider's ``destroy`` of the parent (``codebolt destroy``
of a topology whose parent already died). It lives here, beside the providers whose leftovers
it removes, so that ``destroy`` needs nothing from the layers above it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from codebolt_topo.errors import TopoError

__all__ = ["CHILDREN_DIR", "CHILD_OF", "reap_children"]

CHILDREN_DIR = "children"
"""Where, under a parent's state directory, its child topologies keep their files and state."""

CHILD_OF = "CODEBOLT_CHILD_OF"
"""Environment marker of the processes a parent starts: the parent's state directory."""

log = logging.getLogger(__name__)


async def reap_children(state_dir: str) -> tuple[int, int]:
    """Stop the child node daemons and remove the child containers of the parent whose state
    directory is ``state_dir``; how many of each."""
    from codebolt_topo.providers.processes import scan_marked, stop_group

    found = await asyncio.to_thread(
        scan_marked, {CHILD_OF: state_dir}, lambda argv: b"codebolt_topo.node" in argv
    )
    daemons = [marked for marked in found if marked.pid != os.getpid()]
    await asyncio.gather(
        *(stop_group({"pid": m.pid, "start_time": m.start_time}, grace=5.0) for m in daemons)
    )
    containers = await asyncio.to_thread(_remove_containers, state_dir)
    if daemons or containers:
        log.info(
            "closed the children a dead parent left: %d node daemon(s), %d container(s)",
            len(daemons),
            containers,
        )
    return len(daemons), containers


def _remove_containers(state_dir: str) -> int:
    """Everything the docker provider created for child topologies (their state directories lie
    under ``state_dir``); 0 where no engine is reachable."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return 0
    from codebolt_topo.providers.docker.engine import DockerEngine
    from codebolt_topo.providers.docker.names import LABEL_MANAGED, LABEL_STATE_DIR, MANAGED_BY

    try:
        return DockerEngine().remove_where(
            {"label": [f"{LABEL_MANAGED}={MANAGED_BY}"]},
            LABEL_STATE_DIR,
            state_dir.rstrip("/") + "/",
        )
    except TopoError as error:
        log.warning("could not remove child containers: %s", error)
        return 0
