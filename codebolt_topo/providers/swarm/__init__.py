"""The swarm provider: each node is a Docker Swarm service of the node image, one task, on an
attachable overlay network of its topology; this machine reaches each through a relay container
bound to its loopback.

The runtime is :mod:`.provider` (with :mod:`.engine`, :mod:`.names`, :mod:`.service_spec`,
:mod:`.constraints` and :mod:`.ready`); :mod:`.task_main` is the task's entrypoint program and
:mod:`.relay_main` the relay's. Importing this package imports none of them (nor the Docker SDK).
"""

__all__: list[str] = []
