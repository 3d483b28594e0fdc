"""From a validated topology to a plan: shapes → graph → checks → actions.

Submodules are imported explicitly (``from codebolt_topo.plan.validate import validate_file``):
this package itself imports nothing, so that importing anything under it never pulls networkx
into start-up paths that do not need a graph.
"""

__all__: list[str] = []
