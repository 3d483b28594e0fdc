"""The Python API an agent (and ``codebolt exec``) uses to run work on a node network.

::

    async with NodeClient.connect("ws://127.0.0.1:3100", token) as client:
        handle = await client.exec("c", argv=["nvidia-smi"])
        async for event in handle:          # Started, Output, Notification, Exit, Failed
            ...
        # or: result = await handle.result(); result["c"].stdout

One connection carries any number of concurrent requests. Output arrives as it is produced;
the client checks every chunk's offset (a gap or duplicate raises ProtocolError). Failures are
:mod:`codebolt_topo.errors`: a refused token is ConfigError, an unreachable node ExecError.

Nothing is lost when a connection drops: the executing node holds each job's unacknowledged
output, so when the client's connection (or any link on the path: ``peer-lost``) drops, the
handle reconnects with bounded retries and resumes every open job from the offsets it received,
transparently (``resume=False`` turns this off). The client acknowledges output as the
application consumes it, so an application that stops iterating pauses the remote process.
:meth:`NodeClient.attach` picks up a request from another process, by request id and offsets.
"""

from codebolt_topo.client.connection import NodeClient
from codebolt_topo.client.events import (
    Event,
    ExecResult,
    Exit,
    Failed,
    NodeResult,
    Notification,
    Output,
    SnapshotRequest,
    Started,
)
from codebolt_topo.client.handle import ExecHandle

__all__ = [
    "Event",
    "ExecHandle",
    "ExecResult",
    "Exit",
    "Failed",
    "NodeClient",
    "NodeResult",
    "Notification",
    "Output",
    "SnapshotRequest",
    "Started",
]
