"""The docker provider: each node is a container of the node image, on a network per topology.

The runtime is :mod:`.provider` (with :mod:`.engine`, :mod:`.names`, :mod:`.options`,
:mod:`.sandbox`, :mod:`.firewall`, :mod:`.image` and :mod:`.ready`); :mod:`.container_main` is the
image's entrypoint program. Importing this package imports none of them (nor the Docker SDK).
"""

__all__: list[str] = []
