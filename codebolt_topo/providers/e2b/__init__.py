"""The e2b provider: a node daemon in an e2b sandbox, reached through a local relay.

The runtime is :mod:`.provider` (with :mod:`.install`); :mod:`.relay_main` is the relay program,
one per node here. Importing this package imports none of them (nor the e2b SDK).
"""

__all__: list[str] = []
