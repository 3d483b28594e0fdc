"""What every part speaks: the node protocol's frames and messages, links, flow control and the
node configuration schema.

The daemon (``node/``), the Python client (``client/``), the engine and the providers all import
from here, and this package imports none of them: it sits just above ``plan`` and ``model``.
``codec``, ``frames``, ``tracking``, ``clock`` and ``messages`` are pure (no socket, no event
loop); ``link`` is the one websockets adapter, a node's connection to a peer.
"""
