"""The jobs a node executes: spawned in a session of their own (``spawn``), run and streamed
(``executor``), held for their callers across reconnects (``held``, ``table``), bracketed by
workspace snapshots when asked (``snapshots``), and ended with their whole process tree
(``reaper``)."""
