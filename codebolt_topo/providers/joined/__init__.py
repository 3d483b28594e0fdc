"""The joined provider: nodes that run on a developer's own machine, which nothing can dial.

``apply`` starts nothing for them: it issues a one-time join credential and leaves an offer at
a neighbour (the join point); ``codebolt join`` on the developer's machine exchanges the
credential for the node's launch config and runs its daemon there (``member.py``), which dials
every edge it has. The orchestrator sees it through its neighbours (``presence``).
"""
