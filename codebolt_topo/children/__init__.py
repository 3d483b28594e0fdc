"""Child topologies: a parent node that applies, runs work in and destroys topologies of its own.

``api`` is the children socket protocol (pure); ``plugin`` is the TopologyManagerPlugin that
serves it on a parent node and drives the engine in-process, which puts this package above
``engine``. The node daemon loads the plugin by name through its entry point, never by import.
The cleanup of what a killed parent left (``providers/leftovers.py``) sits with the providers,
because a provider's ``destroy`` needs it.
"""
