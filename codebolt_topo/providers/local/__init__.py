"""The local provider: each node is a daemon process on this machine.

Importing this package imports nothing else, so listing or validating never pays for the
provider's runtime (:mod:`.provider`).
"""

__all__: list[str] = []
