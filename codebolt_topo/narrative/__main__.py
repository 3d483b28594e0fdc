"""``python -m codebolt_topo.narrative``: see :mod:`codebolt_topo.narrative.entry`."""

from __future__ import annotations

import sys

from codebolt_topo.narrative.entry import main

__all__: list[str] = []

sys.exit(main())
