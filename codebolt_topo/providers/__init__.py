"""Providers place nodes: local processes, containers, cloud sandboxes, VMs over SSH.

One package per provider (its settings, its rules, its runtime and helper programs); the
shared pieces are here: the interface (:mod:`.base`), the default rules (:mod:`.rules`), the
registry of entry points (:mod:`.registry`), detached helper processes (:mod:`.processes`),
what a killed parent node left (:mod:`.leftovers`), wheels of this code (:mod:`.wheels`) and an
in-memory provider for tests (:mod:`.memory`). Importing this package imports none of them.
"""

__all__: list[str] = []
