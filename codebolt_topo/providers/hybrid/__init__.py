"""The hybrid provider: places each node on the first provider of its ``placement:`` list that
can take it (:mod:`.provider`). Importing this package imports nothing else.
"""

__all__: list[str] = []
