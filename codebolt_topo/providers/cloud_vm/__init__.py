"""The cloud-vm provider: a node daemon on a machine reached over SSH, through a local tunnel.

The runtime is :mod:`.provider` (with :mod:`.connect`, :mod:`.bootstrap`, :mod:`.wheelhouse` and
:mod:`.forward`); two programs run on their own: :mod:`.remote_main` on the host (its source is
sent over SSH) and :mod:`.tunnel_main` here, one per node. Importing this package imports none of
them (nor asyncssh).
"""

__all__: list[str] = []
